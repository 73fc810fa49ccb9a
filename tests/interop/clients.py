"""Kafka clients nobody here wrote, talking to bellwether through a broker.

kafka-python (pure Python) publishes Telegraf-style line protocol for one
VM; confluent-kafka publishes bellwether JSON for another. Both then read
bellwether's control topic and report the window reports they saw, as JSON
on stdout. Usage: clients.py BROKER JSON_TOPIC LINE_TOPIC CONTROL_TOPIC
"""

import json
import sys
import time

import confluent_kafka
import kafka

broker, json_topic, line_topic, control_topic = sys.argv[1:5]
START_MS = 1_793_577_600_000
MINUTES = 45

# kafka-python: line protocol, nanosecond timestamps as Telegraf sends them.
producer = kafka.KafkaProducer(bootstrap_servers=broker, acks="all")
for minute in range(MINUTES):
    t_ns = (START_MS + minute * 60_000) * 1_000_000
    line = f"vm,host=vm-python cpu_percent={30 + minute % 2},response_time_ms=80 {t_ns}"
    producer.send(line_topic, key=b"vm-python", value=line.encode())
producer.flush()
producer.close()

# confluent-kafka: bellwether JSON with RFC 3339 times, idempotent producer.
producer = confluent_kafka.Producer({"bootstrap.servers": broker, "enable.idempotence": True})
for minute in range(MINUTES):
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((START_MS + minute * 60_000) / 1000))
    message = {"vm_id": "vm-confluent", "time": t, "metrics": {"cpu_percent": 40 + minute % 3}}
    producer.produce(json_topic, key=b"vm-confluent", value=json.dumps(message).encode())
assert producer.flush(30) == 0, "confluent-kafka could not deliver"


def reports(messages):
    return [m for m in messages if m.get("type") == "window_report"]


def enough(found):
    return any(r["vms_scored"] == 2 for r in found)


# kafka-python reads the control topic.
seen_kafka_python = []
consumer = kafka.KafkaConsumer(
    control_topic,
    bootstrap_servers=broker,
    group_id="interop-kafka-python",
    auto_offset_reset="earliest",
    consumer_timeout_ms=2000,
)
deadline = time.time() + 90
while time.time() < deadline and not enough(seen_kafka_python):
    for record in consumer:
        seen_kafka_python.extend(reports([json.loads(record.value)]))
consumer.close()

# confluent-kafka reads it too.
seen_confluent = []
consumer = confluent_kafka.Consumer(
    {"bootstrap.servers": broker, "group.id": "interop-confluent", "auto.offset.reset": "earliest"}
)
consumer.subscribe([control_topic])
deadline = time.time() + 90
while time.time() < deadline and not enough(seen_confluent):
    message = consumer.poll(1.0)
    if message is None or message.error():
        continue
    seen_confluent.extend(reports([json.loads(message.value())]))
consumer.close()

print(json.dumps({"kafka_python": seen_kafka_python, "confluent_kafka": seen_confluent}))
