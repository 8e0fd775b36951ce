"""Benchmark: retrieval quality of the knowledge base on the labelled help-center set.

    .venv/bin/python bench/knowledge_quality.py [--top-k 5] [--keep-db]

Ingests knowledge/corpus/help_center/ (24 articles) into a tenant of a scratch database
(``vigil_bench_knowledge``, created and dropped here, under the benchmarks' shared lock) with
the default offline embedder (all-MiniLM-L6-v2), then asks every question of
knowledge/corpus/help_center_questions.json (each labelled with the article that answers it)
in the three search modes. For each mode it prints recall@k (the answering article is among
the first k hits' documents) and MRR (mean of 1 / rank of the first hit of that article, 0
when absent from the first 20). Keyword search is the baseline the other two are compared to.

The last line printed is one JSON object: vector_recall_at_5, keyword_recall_at_5,
hybrid_recall_at_5, hybrid_mrr (and the other MRRs). Target: hybrid recall@5 >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchlib import BenchDatabase, db_urls, say  # noqa: E402

CORPUS = ROOT / "knowledge" / "corpus" / "help_center"
QUESTIONS = ROOT / "knowledge" / "corpus" / "help_center_questions.json"
MODES = ("vector", "keyword", "hybrid")
RANK_DEPTH = 20
TARGET_HYBRID_RECALL = 0.9


def measure(top_k: int) -> dict[str, float]:
    from django.contrib.auth.models import User  # noqa: F401  (apps loaded)

    from config.connection import connection
    from governance.actors import Actor
    from knowledge.models import Document
    from knowledge.selectors import knowledge_search
    from knowledge.services import document_embed, document_ingest
    from tenants.models import Tenant
    from tenants.services import provision_request_build, tenant_provision

    tenant_provision(
        request=provision_request_build(
            name="Quality", domain="quality.localhost", tier="starter", admin_email="admin@quality.example"
        )
    )
    connection.set_tenant(Tenant.objects.get(domains__domain="quality.localhost"))
    actor = Actor.system("bench")
    files = sorted(CORPUS.glob("*.md"))
    t0 = time.perf_counter()
    ids: dict[int, str] = {}
    chunks = 0
    for path in files:
        result = document_ingest(
            collection="help-center",
            data=path.read_bytes(),
            filename=path.name,
            actor=actor,
            create_collection=True,
            enqueue=False,
        )
        document = document_embed(document_id=result.document.pk)
        assert document is not None and document.status == "ready", path
        ids[document.pk] = path.name
        chunks += document.chunk_count
    ingest_s = time.perf_counter() - t0
    say(f"ingested {len(files)} articles, {chunks} chunks, in {ingest_s:.1f} s (model load included)")
    assert Document.objects.count() == len(files)

    labelled = json.loads(QUESTIONS.read_text())
    out: dict[str, float] = {}
    for mode in MODES:
        found, reciprocal, t0 = 0, 0.0, time.perf_counter()
        misses: list[str] = []
        for item in labelled:
            hits = knowledge_search(query=item["question"], collection="help-center", mode=mode, top_k=RANK_DEPTH)
            ranked_docs = list(dict.fromkeys(ids[hit.document_id] for hit in hits))
            rank = ranked_docs.index(item["document"]) + 1 if item["document"] in ranked_docs else 0
            if 0 < rank <= top_k:
                found += 1
            else:
                misses.append(f"{item['question']!r} -> {ranked_docs[:1]} (wanted {item['document']})")
            reciprocal += 1.0 / rank if rank else 0.0
        elapsed_ms = (time.perf_counter() - t0) * 1000 / len(labelled)
        out[f"{mode}_recall_at_{top_k}"] = round(found / len(labelled), 4)
        out[f"{mode}_mrr"] = round(reciprocal / len(labelled), 4)
        say(
            f"  {mode:8} recall@{top_k} {found / len(labelled):.3f}   MRR {reciprocal / len(labelled):.3f}   "
            f"{elapsed_ms:.1f} ms per query"
        )
        for miss in misses[:5]:
            say(f"           missed: {miss}")
    out["questions"] = len(labelled)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top-k", type=int, default=5, help="k of recall@k (5)")
    parser.add_argument("--db-name", default="vigil_bench_knowledge")
    parser.add_argument("--wait", type=float, default=900.0, help="seconds to wait for another benchmark (900)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database at the end")
    args = parser.parse_args(argv)

    _, bench_url, maint_url = db_urls(args.db_name)
    os.environ["DATABASE_URL"] = os.environ["DATABASE_OWNER_URL"] = bench_url
    os.environ.setdefault("VIGIL_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("VIGIL_LOG_LEVEL", "WARNING")
    os.environ.setdefault("VIGIL_SPARE_POOL_SIZE", "0")

    db = BenchDatabase(maint_url, args.db_name, args.wait)
    try:
        say("== Vigil benchmark: knowledge retrieval quality (help-center set) ==")
        db.create()
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        results = measure(args.top_k)
        connections.close_all()
    finally:
        try:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            if not args.keep_db:
                db.drop()
        finally:
            db.close()
    k = args.top_k
    baseline = results[f"keyword_recall_at_{k}"] or 1e-9
    say(
        f"hybrid recall@{k} / keyword baseline: {results[f'hybrid_recall_at_{k}'] / baseline:.2f}x; "
        f"vector / keyword: {results[f'vector_recall_at_{k}'] / baseline:.2f}x"
    )
    ok = results[f"hybrid_recall_at_{k}"] >= TARGET_HYBRID_RECALL
    say(f"target hybrid recall@{k} >= {TARGET_HYBRID_RECALL}: {'met' if ok else 'NOT met'}")
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
