from django.core.management.base import BaseCommand, CommandError

from hub.stores.search import SearchError
from hub.tracking.indexing import search_index


class Command(BaseCommand):
    help = "Create the Elasticsearch indices, templates and mappings (idempotent)."

    def handle(self, *args, **opts):
        idx = search_index()
        if idx is None:
            self.stdout.write("HUB_ELASTICSEARCH_URL is not set; nothing to do")
            return
        try:
            idx.ensure_indices()
        except SearchError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"indices ready: {idx.runs_index}, {idx.commits_index}")
