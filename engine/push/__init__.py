"""Alerts pushed by Alertmanager (POST /api/v1/alerts): hints, never proof.

payload.py  Alertmanager's webhook payload (version 4), every size bounded
route.py    one alert to (host, kind) by its labels, as the policy's alerts: says
token.py    the receiver's token: from the environment, compared in constant time
inbox.py    the engine's side: each tick, new alert events become notes and polls
"""
