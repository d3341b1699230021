"""One pagination for every list: ``?page=N&page_size=M`` (max 1000)."""

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


def paginate(view, queryset, serializer_fn):
    """Paginate ``queryset`` for ``view`` and serialize each row with ``serializer_fn``."""
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response([serializer_fn(x) for x in page])
