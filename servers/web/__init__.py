"""The web server: search through SearXNG or Brave, and read pages as clean text."""
