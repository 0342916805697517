"""The speech server: offline speech-to-text and text-to-speech (see docs/speech.md)."""
