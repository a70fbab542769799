#!/usr/bin/env python3
"""The plain-Python middleware `dedupd ingest` is measured against (BENCHMARKS.md, ingest).

What an integration engineer writes today for the sample feeds' three shapes: the csv and json
modules, the `phonenumbers` package (Google's libphonenumber port) for E.164, one dict per
customer. It does the same work as `dedupd ingest` on a fresh state, minus the state store:
read the CRM CSV, the web form NDJSON and the billing JSON array; normalize names (re-case
one-case names), e-mails (trim, lowercase, shape check) and phones (parse with the source's
default region, keep valid numbers only, format E.164); timestamps to UTC; merge field by field
per customer (newest timestamp wins, a missing value never overwrites, do-not-call sticks);
write contacts.ndjson, contacts.csv and rejects.ndjson (line and reason).

    python3 ingest_reference.py FEED_DIR OUT_DIR

FEED_DIR holds crm.csv, webform.ndjson and billing.json (what `dedupd-bench ingest` generates).
Prints one JSON line: records read, contacts, rejects, seconds.
"""

import csv
import json
import os
import re
import sys
import time
import unicodedata
from datetime import datetime, timezone

import phonenumbers

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean(value):
    if value is None:
        return None
    value = " ".join(unicodedata.normalize("NFKC", str(value)).split())
    return value or None


def name(value):
    value = clean(value)
    if value is None:
        return None
    if value.isupper() or value.islower():
        return value.title()
    return value


def email(value):
    value = clean(value)
    if value is None:
        return None, None
    value = value.lower()
    if not EMAIL.match(value):
        return None, "invalid_email"
    return value, None


def phone(value, region):
    value = clean(value)
    if value is None:
        return None, None
    digits = value.replace(" ", "")
    if digits.startswith("00"):  # the international prefix most of the world dials
        value = "+" + digits[2:]
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None, "invalid_phone"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid_phone"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def merge(contacts, record):
    """Field by field: the newest timestamp wins; a missing value never overwrites."""
    key = record["customer_id"]
    current = contacts.get(key)
    if current is None:
        contacts[key] = {
            "fields": {f: (v, record["ts"]) for f, v in record["fields"].items() if v is not None},
            "do_not_call": record["do_not_call"],
        }
        return
    fields = current["fields"]
    for f, v in record["fields"].items():
        if v is None:
            continue
        old = fields.get(f)
        if old is None or record["ts"] >= old[1]:
            fields[f] = (v, record["ts"])
    current["do_not_call"] = current["do_not_call"] or record["do_not_call"]


def record(source, line, customer_id, first, last, raw_phone, raw_email, ts, dnc, rejects):
    customer_id = clean(customer_id)
    if customer_id is None:
        rejects.append({"source": source, "line": line, "reason": "missing_key"})
        return None
    e164, why = phone(raw_phone, "US")
    if why:
        rejects.append({"source": source, "line": line, "reason": why, "field": "phone"})
        return None
    mail, why = email(raw_email)
    if why:
        rejects.append({"source": source, "line": line, "reason": why, "field": "email"})
        return None
    return {
        "customer_id": customer_id,
        "ts": ts,
        "do_not_call": dnc,
        "fields": {
            "first_name": name(first),
            "last_name": name(last),
            "phone_e164": e164,
            "email": mail,
        },
    }


def read_crm(path, rejects):
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                ts = datetime.strptime(row["Updated At"], "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=timezone.utc
                )
            except (KeyError, TypeError, ValueError):
                rejects.append({"source": "crm", "line": i, "reason": "invalid_timestamp"})
                continue
            yield record("crm", i, row.get("Customer ID"), row.get("First Name"),
                         row.get("Last Name"), row.get("Mobile"), row.get("Email"), ts, False,
                         rejects)


def read_webform(path, rejects):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                ts = datetime.fromtimestamp(int(obj["submitted_at"]), tz=timezone.utc)
            except (ValueError, KeyError, TypeError):
                rejects.append({"source": "webform", "line": i, "reason": "malformed_row"})
                continue
            full = clean(obj.get("name")) or ""
            first, _, last = full.partition(" ")
            yield record("webform", i, obj.get("cust_id"), first or None, last or None,
                         obj.get("phone"), obj.get("email"), ts, False, rejects)


def read_billing(path, rejects):
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    for i, obj in enumerate(items, start=1):
        try:
            ts = datetime.fromisoformat(obj["updatedAt"]).astimezone(timezone.utc)
        except (ValueError, KeyError, TypeError):
            rejects.append({"source": "billing", "line": i, "reason": "malformed_row"})
            continue
        c = obj.get("contact") or {}
        yield record("billing", i, obj.get("customerId"), c.get("firstName"),
                     c.get("lastName"), c.get("phone"), c.get("email"), ts,
                     obj.get("status") == "CLOSED", rejects)


def main():
    feeds, out = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    rejects, contacts, read = [], {}, 0
    for reader, name_ in ((read_crm, "crm.csv"), (read_webform, "webform.ndjson"),
                          (read_billing, "billing.json")):
        for rec in reader(os.path.join(feeds, name_), rejects):
            read += 1
            if rec is not None:
                merge(contacts, rec)
    columns = ["customer_id", "first_name", "last_name", "phone_e164", "email", "do_not_call"]
    with open(os.path.join(out, "contacts.ndjson"), "w", encoding="utf-8") as nd, \
            open(os.path.join(out, "contacts.csv"), "w", newline="", encoding="utf-8") as cf:
        writer = csv.writer(cf)
        writer.writerow(columns)
        for key in sorted(contacts):
            c = contacts[key]
            row = {"customer_id": key, "do_not_call": c["do_not_call"]}
            latest = None
            for f, (v, ts) in c["fields"].items():
                row[f] = v
                latest = ts if latest is None or ts > latest else latest
            row["updated_at"] = latest.isoformat().replace("+00:00", "Z") if latest else None
            nd.write(json.dumps(row) + "\n")
            writer.writerow([row.get(col, "") for col in columns])
    with open(os.path.join(out, "rejects.ndjson"), "w", encoding="utf-8") as rf:
        for r in rejects:
            rf.write(json.dumps(r) + "\n")
    print(json.dumps({
        "records_read": read,
        "contacts": len(contacts),
        "rejects": len(rejects),
        "elapsed_seconds": time.perf_counter() - started,
    }))


if __name__ == "__main__":
    main()
