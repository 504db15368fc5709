"""The core every feature builds on: the app factory, configuration, extensions, database settings,
errors and problem+json, logins, the clock, the audit log, idempotency, jobs, and the application's
use of the ledger (accounts, guards). It imports no feature."""
