# Copy to instance/config.py and adjust. Environment variables (TIMEBANK_*) override these.

# SQLite in this folder by default; for a district or city use PostgreSQL:
# SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://timebank@127.0.0.1:5432/timebank"

# Keep this secret; without it a random key is created in instance/secret_key.
# SECRET_KEY = "change-me"

TIMEBANK_TIMEZONE = "Asia/Shanghai"

# Name of this deployment in signed ledger checkpoints.
TIMEBANK_ORIGIN = "timebank.example.org/ledger"

# Public address printed in QR codes (check-in URLs), when behind a reverse proxy.
# TIMEBANK_BASE_URL = "https://timebank.example.org"

# Share rate-limit counters between workers and machines:
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/0"
