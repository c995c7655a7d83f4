"""Notifications: escalations and closes sent to Slack, PagerDuty and webhooks through a
store-backed outbox (queued with the escalation, delivered by a worker thread).

    notice.py     what a notification says (channel-neutral, no secrets)
    route.py      which channels take it (the policy's filters)
    outbox.py     OutboxNotifier, the Notifier the engine calls: queues rows, wakes the worker
    deliver.py    DeliveryWorker: due rows, retries with capped exponential backoff
    channels.py   each receiver's protocol (Slack, PagerDuty Events v2, webhook)
    transport.py  the one HTTP seam: no redirects, one deadline, bounded answers
    secrets.py    channel_secrets: the channels' URLs and keys, from the environment

Nothing is imported here: engine/record/notifications.py imports notice.py, and the
worker imports the record side.
"""
