"""Reports: monthly figures and exports, anomaly flags, charts."""
