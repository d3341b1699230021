from django.core.management.base import BaseCommand, CommandError

from hub.stores.search import SearchError
from hub.tracking.indexing import reindex_all


class Command(BaseCommand):
    help = (
        "Rebuild the search index from the database (the database is canonical) without "
        "downtime: new indices are loaded, then the aliases move to them atomically; on "
        "failure the current indices keep serving."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch", type=int, default=1000, help="rows read from the DB per query"
        )

    def handle(self, *args, **opts):
        try:
            counts = reindex_all(batch=opts["batch"], stdout=self.stdout)
        except SearchError as e:
            raise CommandError(f"{e} (the previous indices are still serving)") from e
        self.stdout.write(
            f"reindexed {counts['runs']} run(s) and {counts['commits']} commit(s); "
            f"{counts['caught_up']} recently changed re-sent after the swap"
        )
