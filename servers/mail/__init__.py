"""The mail server: an IMAP/SMTP gateway over any number of accounts.

Modules, one concern each: `config` (accounts), `imap_wire` (IMAP syntax: quoting, parsing,
folder-name encoding), `imap_pool` (connections per account), `mailstore` (IMAP operations),
`message` (MIME decoding), `html_text` (reader-mode text), `compose` and `smtp` (sending),
`errors` (library exceptions to ToolError), `gateway` (the logic the tools call).
"""
