"""What operators reach over HTTP: health and readiness (later metrics and the admin API)."""
