"""Sync: ``pull`` (one topic: plan, fetch, reconcile), ``run`` (several topics, as cron does), ``files``
(import), ``checks`` (verify), ``listing`` (listings that must be provably complete)."""
