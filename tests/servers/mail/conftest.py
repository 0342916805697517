from tests.support.mail_env import dovecot, mail, smtp_sink

__all__ = ["dovecot", "mail", "smtp_sink"]
