"""A tiny built-in server: the smallest complete example of the server kit."""
