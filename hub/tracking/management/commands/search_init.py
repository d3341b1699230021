from django.core.management.base import BaseCommand, CommandError

from hub.stores.search import SearchError
from hub.tracking.indexing import reindex_all, search_index


class Command(BaseCommand):
    help = (
        "Create the Elasticsearch templates, and on a fresh system the first indices behind "
        "their aliases (idempotent). Indices with an older document layout are rebuilt from "
        "the database behind their aliases, without downtime (as `search_reindex` does)."
    )

    def handle(self, *args, **opts):
        idx = search_index()
        if idx is None:
            self.stdout.write("HUB_ELASTICSEARCH_URL is not set; nothing to do")
            return
        try:
            stale = idx.ensure_indices()
            if stale:
                self.stdout.write(
                    f"{', '.join(stale)}: older document layout; rebuilding from the database"
                )
                counts = reindex_all(stdout=self.stdout)
                self.stdout.write(
                    f"reindexed {counts['runs']} run(s) and {counts['commits']} commit(s)"
                )
            layout = idx.describe()
        except SearchError as e:
            raise CommandError(f"{e} (the previous indices are still serving)") from e
        for alias, indices in layout.items():
            self.stdout.write(f"{alias} -> {', '.join(indices)}")
