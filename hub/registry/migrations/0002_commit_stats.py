"""Commit.stats: a commit's files, bytes, new and reused bytes (hub.registry.dedupe), computed
once. Existing commits are filled in here, a batch at a time."""

from django.db import migrations, models

BATCH = 100


def _in_batches(qs, field, values, *columns):
    values = list(values)
    for i in range(0, len(values), BATCH):
        yield from qs.filter(**{f"{field}__in": values[i : i + BATCH]}).values_list(*columns)


def fill(apps, schema_editor):
    from hub.registry.dedupe import commit_stats

    Commit = apps.get_model("registry", "Commit")
    FileObject = apps.get_model("registry", "FileObject")
    Tree = apps.get_model("registry", "Tree")
    pks = list(Commit.objects.filter(stats__isnull=True).values_list("pk", flat=True))
    for i in range(0, len(pks), BATCH):
        commits = list(Commit.objects.filter(pk__in=pks[i : i + BATCH]))
        parent_tree = {}
        for c in commits:
            for sha, tree in Commit.objects.filter(
                repo_id=c.repo_id, sha__in=c.parents
            ).values_list("sha", "tree_id"):
                parent_tree[(c.repo_id, sha)] = tree
        tree_ids = {c.tree_id for c in commits} | set(parent_tree.values())
        entries = dict(_in_batches(Tree.objects, "hash", tree_ids, "hash", "entries"))
        oids = {oid for e in entries.values() for oid in e.values()}
        manifests = {
            oid: (size, chunks)
            for oid, size, chunks in _in_batches(
                FileObject.objects, "oid", oids, "oid", "size", "chunks"
            )
        }
        for c in commits:
            c.stats = commit_stats(
                entries=entries[c.tree_id],
                parent_entries=[
                    entries[parent_tree[(c.repo_id, p)]]
                    for p in c.parents
                    if (c.repo_id, p) in parent_tree
                ],
                manifests=manifests,
            )
        Commit.objects.bulk_update(commits, ["stats"])


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="commit", name="stats", field=models.JSONField(blank=True, null=True)
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
