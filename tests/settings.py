"""Django settings for the test suite."""

SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "channels_jwt",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": ":memory:"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# A dedicated random key, as the checks recommend (never SECRET_KEY).
CHANNELS_JWT = {"SIGNING_KEY": "k" * 16 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"}
LOGGING_CONFIG = None
# The user fixtures set passwords; PBKDF2's real cost would dominate the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
