from django.core.management.base import BaseCommand, CommandError

from hub.stores.search import SearchError
from hub.tracking.indexing import search_index


class Command(BaseCommand):
    help = (
        "Create the Elasticsearch templates, and on a fresh system the first indices behind "
        "their aliases (idempotent)."
    )

    def handle(self, *args, **opts):
        idx = search_index()
        if idx is None:
            self.stdout.write("HUB_ELASTICSEARCH_URL is not set; nothing to do")
            return
        try:
            idx.ensure_indices()
            layout = idx.describe()
        except SearchError as e:
            raise CommandError(str(e)) from e
        for alias, indices in layout.items():
            self.stdout.write(f"{alias} -> {', '.join(indices)}")
