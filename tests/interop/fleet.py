"""A fleet nobody in bellwether's simulator made, published with kafka-python.

Writes its inventory (a JSON array of VM records) to INVENTORY, publishes
HISTORY_HOURS of one-minute JSON snapshots of every VM as fast as the broker
takes them, prints "history published", waits for the file GO to exist (the
test approves the patch meanwhile), then publishes AFTER_HOURS more at
SPEED times real time. A fleet-wide surge hits every VM, patched or not,
SURGE_START minutes after the history ends, for SURGE_MINUTES: response
time x2.2, CPU +25 points, network latency x1.8. The patch changes nothing.

Usage: fleet.py BROKER TOPIC INVENTORY GO VMS HISTORY_HOURS AFTER_HOURS
                SURGE_START SURGE_MINUTES SPEED
"""

import json
import math
import os
import random
import sys
import time

import kafka
import kafka.admin
import kafka.errors

(broker, topic, inventory_path, go_path, vms, history_hours, after_hours,
 surge_start, surge_minutes, speed) = sys.argv[1:11]
vms, speed = int(vms), float(speed)
history_minutes = int(float(history_hours) * 60)
after_minutes = int(float(after_hours) * 60)
surge_start, surge_minutes = float(surge_start), float(surge_minutes)
START_MS = 1_793_577_600_000  # 2026-11-02 00:00 UTC
rng = random.Random(20261201)

regions = [("eu-central-1", 1.0), ("us-west-2", -7.0)]
roles = ["web", "api"]
fleet = []
for i in range(vms):
    role = roles[i % 2]
    region, offset = regions[(i // 2) % 2]
    fleet.append({
        "id": f"host-{i:03d}",
        "instance_type": "m6i.large",
        "region": region,
        "criticality": "standard",
        "tags": {"role": role, "ring": "canary" if i < 4 else "main"},
        # Levels and a daily shape of its own: two harmonics, a lunch dip.
        "_offset": offset,
        "_cpu": rng.uniform(12, 30),
        "_mem": rng.uniform(40, 65),
        "_disk": rng.uniform(20, 90),
        "_lat": rng.uniform(0.6, 2.0),
        "_resp": rng.uniform(60, 160),
        "_err": rng.uniform(0.1, 0.5),
        "_amp": rng.uniform(0.15, 0.35),
        "_noise": 0.0,
    })
with open(inventory_path, "w") as f:
    json.dump([{k: v for k, v in vm.items() if not k.startswith("_")} for vm in fleet], f)


def snapshot(vm, minute):
    t_ms = START_MS + minute * 60_000
    hour = (t_ms / 3_600_000 + vm["_offset"]) % 24
    day = 2 * math.pi * (hour - 8) / 24
    load = 1 + vm["_amp"] * (math.sin(day) + 0.3 * math.sin(2 * day))
    vm["_noise"] = 0.8 * vm["_noise"] + rng.gauss(0, 0.02)
    load += vm["_noise"]
    cpu = vm["_cpu"] * load + rng.gauss(0, 0.8)
    latency = vm["_lat"] * (1 + 0.15 * (load - 1)) * (1 + rng.gauss(0, 0.03))
    response = vm["_resp"] * (1 + 0.4 * (load - 1)) * (1 + rng.gauss(0, 0.03))
    errors = max(0.0, vm["_err"] * load + rng.gauss(0, 0.03))
    since_surge = minute - history_minutes - surge_start
    if 0 <= since_surge < surge_minutes:
        cpu += 25
        response *= 2.2
        latency *= 1.8
    metrics = {
        "cpu_percent": min(100.0, max(0.0, cpu)),
        "memory_percent": vm["_mem"] + 3 * (load - 1) + rng.gauss(0, 0.2),
        "disk_io_mbps": max(0.0, vm["_disk"] * load * (1 + rng.gauss(0, 0.05))),
        "network_latency_ms": max(0.05, latency),
        "response_time_ms": max(0.1, response),
        "error_rate_percent": errors,
        "transaction_success_percent": 100 - 1.1 * errors - abs(rng.gauss(0, 0.04)),
    }
    # Up to 3 s of clock jitter, as real agents have.
    return {"vm_id": vm["id"], "time": t_ms + rng.randrange(3000), "metrics": metrics}


# The fleet's team owns its topic: created here, four partitions.
admin = kafka.KafkaAdminClient(bootstrap_servers=broker)
try:
    admin.create_topics([kafka.admin.NewTopic(topic, num_partitions=4, replication_factor=1)])
except kafka.errors.TopicAlreadyExistsError:
    pass
admin.close()
producer = kafka.KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=20)


def publish(minute):
    for vm in fleet:
        producer.send(topic, key=vm["id"].encode(), value=json.dumps(snapshot(vm, minute)).encode())


for minute in range(history_minutes):
    publish(minute)
producer.flush()
print("history published", flush=True)
while not os.path.exists(go_path):
    time.sleep(0.2)
started = time.monotonic()
for i in range(after_minutes):
    publish(history_minutes + i)
    producer.flush()
    due = (i + 1) * 60 / speed
    wait = due - (time.monotonic() - started)
    if wait > 0:
        time.sleep(wait)
producer.close()
print("done", flush=True)
