-- Events committed but not yet readable in commit order, and how long the
-- oldest transaction that holds them back has been running (migration 6).
SELECT events, seconds FROM commit_order_lag()
