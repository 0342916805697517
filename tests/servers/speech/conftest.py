from tests.support.speech_env import speech_stack, spoken  # noqa: F401
