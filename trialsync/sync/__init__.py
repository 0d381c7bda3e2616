"""Sync: ``pull`` (one topic: plan, fetch, reconcile), ``run`` (several topics, as cron does), ``files``
(import), ``checks`` (verify), ``doctor`` (is all well with the database and the API?), ``listing``
(listings that must be provably complete), ``drift`` (schema drift warnings)."""
