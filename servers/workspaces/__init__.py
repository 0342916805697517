"""Workspaces: directories where an agent runs tasks with file and shell tools; files, sessions, runs."""
