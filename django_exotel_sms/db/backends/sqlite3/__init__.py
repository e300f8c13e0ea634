"""``ENGINE = "django_exotel_sms.db.backends.sqlite3"``: SQLite for a web server and a worker."""
