"""Audience: who gets the digest.

Owns subscriber lists (ours, Mailchimp, listmonk), their CSV layer,
validation, preferences, the suppression rules and the list check.

May import: email, content, state, model, errors, files.
Must not import: delivery or cli.
"""
