"""The built-in authorization server (`oauth.mode: builtin`), on Authlib's OAuth 2 grammar."""
