"""Delivery: the send use case, start to finish.

Owns the campaign (which issue, resume, expiry), the sender (workers, rate
control, retries), the transports (SMTP: aiosmtplib connects, and
smtp_adapter pipelines the transactions on its connection; Maildir), the run
report and the status use case.

May import: audience, email, content, state, model, errors, files.
Must not import: cli.
"""
