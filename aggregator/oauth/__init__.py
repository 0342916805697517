"""OAuth 2.1 for toolmux: a protected resource (tokens → principals) and its authorization servers.

`gate.OAuthGate` is what the app holds: it verifies bearer tokens after the keys (external OIDC
provider or the built-in server), answers the discovery documents, and writes the 401 challenge.
"""
