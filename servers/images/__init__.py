"""The images domain server: image generation over configured backends, results kept in storage."""
