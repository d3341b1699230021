from django.core.management.base import BaseCommand, CommandError

from hub.stores.search import SearchError
from hub.tracking.indexing import reindex_all


class Command(BaseCommand):
    help = "Rebuild the search index from the database (the database is canonical)."

    def handle(self, *args, **opts):
        try:
            counts = reindex_all()
        except SearchError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(f"reindexed {counts['runs']} run(s) and {counts['commits']} commit(s)")
