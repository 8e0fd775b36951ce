"""Knowledge tables of a tenant schema. The ``vector`` type, its operators and the HNSW access
method come from the extension in ``public`` (tenants/0002), found through the tenant's search
path (schema, then public); this migration creates no extension."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
import pgvector.django.indexes
import pgvector.django.vector
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Collection",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.SlugField(max_length=100, unique=True)),
                ("description", models.TextField(blank=True)),
                (
                    "embedder",
                    models.CharField(
                        choices=[
                            ("local", "Local model (offline)"),
                            ("connection", "An operator's LLM connection (OpenAI-compatible)"),
                        ],
                        default="local",
                        max_length=20,
                    ),
                ),
                (
                    "embedder_connection",
                    models.CharField(blank=True, help_text="LLM connection (connection embedder)", max_length=50),
                ),
                (
                    "embedder_model",
                    models.CharField(blank=True, help_text="embedding model of that connection", max_length=100),
                ),
                ("dimension", models.PositiveIntegerField(default=384, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="Document",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=300)),
                ("source", models.CharField(blank=True, help_text="file name or URL it came from", max_length=500)),
                ("content_type", models.CharField(max_length=20)),
                ("content_hash", models.CharField(help_text="sha256 of the extracted text", max_length=64)),
                ("text", models.TextField(help_text="the extracted text that is chunked")),
                ("metadata", models.JSONField(blank=True, default=dict)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending: waiting to be embedded"),
                            ("ready", "Ready: searchable"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("error", models.TextField(blank=True)),
                ("chunk_count", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "collection",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="documents", to="knowledge.collection"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="Chunk",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField()),
                ("text", models.TextField()),
                ("text_hash", models.CharField(max_length=64)),
                ("embedding", pgvector.django.vector.VectorField(dimensions=384)),
                (
                    "search_vector",
                    models.GeneratedField(
                        db_persist=True,
                        expression=django.contrib.postgres.search.SearchVector("text", config="english"),
                        output_field=django.contrib.postgres.search.SearchVectorField(),
                    ),
                ),
                (
                    "collection",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="knowledge.collection"
                    ),
                ),
                (
                    "document",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="chunks", to="knowledge.document"
                    ),
                ),
            ],
            options={
                "ordering": ["document_id", "position"],
            },
        ),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(
                fields=("collection", "content_hash"), name="knowledge_document_hash_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                ef_construction=64,
                fields=["embedding"],
                m=16,
                name="knowledge_chunk_embedding_hnsw",
                opclasses=["vector_cosine_ops"],
            ),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="knowledge_chunk_fts_gin"),
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=models.Index(fields=["collection"], name="knowledge_chunk_collection"),
        ),
        migrations.AddConstraint(
            model_name="chunk",
            constraint=models.UniqueConstraint(fields=("document", "position"), name="knowledge_chunk_position_unique"),
        ),
    ]
