"""Audience: who gets the digest.

Owns subscriber lists (ours, Mailchimp, listmonk), their CSV layer,
validation, preferences, the suppression rules, the list check, the
readers' self-service (unsubscribe, Undo, preferences) and the inbox
(bounces, complaints and mailto unsubscribes from Maildir, mbox or IMAP).

May import: email, content, state, model, errors, files.
Must not import: delivery or cli.
"""
