-- Three queries an SRE runs over the history, timed by
-- `scripts/bench-history` in DataFusion (bellwether sql) and DuckDB over the
-- same Parquet files. One query per statement, separated by ';'.

-- 1. Fleet-wide hourly profile of every metric (full scan, grouped).
SELECT metric, date_trunc('hour', time) AS hour, avg(value) AS mean, max(value) AS peak, count(*) AS samples
FROM samples
GROUP BY metric, date_trunc('hour', time)
ORDER BY metric, hour;

-- 2. One VM's response-time timeline (selective filter, ordered).
SELECT time, value
FROM samples
WHERE vm_id = 'vm-0042' AND metric = 'response_time_ms'
ORDER BY time;

-- 3. The ten VMs with the worst mean response time since the patch.
SELECT vm_id, avg(value) AS mean_response_ms, max(value) AS worst_ms
FROM samples
WHERE metric = 'response_time_ms' AND time >= TIMESTAMP '2026-11-03 06:00:00'
GROUP BY vm_id
ORDER BY mean_response_ms DESC, vm_id
LIMIT 10;
