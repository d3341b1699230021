"""Model cards and model search over HTTP: thin views over :mod:`hub.registry.cards` and
:mod:`hub.registry.model_search`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts.models import Role
from hub.common.openapi import errors
from hub.registry import cards, model_search, selectors


class CardOut(serializers.Serializer):
    commit = serializers.CharField(help_text="the commit whose card this is")
    source = serializers.ChoiceField(
        choices=["readme", "generated"],
        help_text="readme: the commit's README.md; generated: built from the lineage (the "
        "commit has no README.md); its Markdown is in 'markdown', to download or commit",
    )
    path = serializers.CharField()
    metadata = serializers.DictField(help_text="the YAML front matter as JSON ({} when none)")
    fields = serializers.DictField(
        help_text="the known fields, normalised: tags, base_model, datasets, metrics, language "
        "(lists of strings); license, pipeline_tag, library_name (strings)"
    )
    metadata_error = serializers.CharField(
        allow_null=True, help_text="why the front matter could not be read (then metadata is {})"
    )
    warnings = serializers.ListField(child=serializers.CharField())
    truncated = serializers.BooleanField(help_text="the README is longer than HUB_MAX_CARD_BYTES")
    html = serializers.CharField(help_text="the card's Markdown body, rendered and sanitised")
    markdown = serializers.CharField(
        allow_null=True, help_text="the generated README.md (source=generated only)"
    )


class CardApi(APIView):
    class InputSerializer(serializers.Serializer):
        branch = serializers.CharField(
            required=False, max_length=255, help_text="default: the repo's default branch"
        )
        expected_head = serializers.CharField(
            required=False,
            max_length=40,
            help_text="the head the card was generated for; 409 branch_conflict if it moved",
        )

    class CreatedSerializer(serializers.Serializer):
        commit = serializers.CharField()
        branch = serializers.CharField()

    @extend_schema(
        operation_id="repos_card_get",
        parameters=[
            OpenApiParameter("ref", str, description="branch, tag or commit; default branch")
        ],
        responses={200: CardOut, **errors(400, 503)},
        summary="The model card of a ref: its README.md rendered, or one generated from lineage",
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.resolve(
            repo=repo, ref=request.query_params.get("ref") or repo.default_branch
        )
        return Response(CardOut(cards.card_view(repo=repo, commit=commit, user=request.user)).data)

    @extend_schema(
        operation_id="repos_card_create",
        request=InputSerializer,
        responses={201: CreatedSerializer, **errors(400, 409, 503)},
        summary="Commit the generated card as README.md (the 'add this card' action)",
    )
    def post(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        branch = data.validated_data.get("branch") or repo.default_branch
        commit = cards.card_commit(
            repo=repo,
            branch=branch,
            user=request.user,
            expected_head=data.validated_data.get("expected_head"),
        )
        return Response(self.CreatedSerializer({"commit": commit.sha, "branch": branch}).data, 201)


class ModelHitOut(serializers.Serializer):
    id = serializers.CharField(help_text="namespace/name")
    namespace = serializers.CharField()
    name = serializers.CharField()
    private = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    default_branch = serializers.CharField()
    commit = serializers.CharField(help_text="the default branch's head")
    message = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField(help_text="when the head commit was made")
    card = serializers.ChoiceField(choices=["readme", "invalid", "generated"])
    license = serializers.CharField(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    base_model = serializers.ListField(child=serializers.CharField())
    datasets = serializers.ListField(child=serializers.CharField())
    pipeline_tag = serializers.CharField(allow_null=True)
    metrics = serializers.DictField(
        help_text="{metric: {last|min|max|last_step: [one value per producing run]}}"
    )
    score = serializers.FloatField(allow_null=True)


class FacetCountOut(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class ModelFacetsOut(serializers.Serializer):
    tags = FacetCountOut(many=True)
    license = FacetCountOut(many=True)
    base_model = FacetCountOut(many=True)


class ModelSearchOut(serializers.Serializer):
    results = ModelHitOut(many=True)
    total = serializers.IntegerField(help_text="matches in the index (before the final check)")
    facets = ModelFacetsOut()
    took_ms = serializers.IntegerField()


class ModelSearchApi(APIView):
    class InputSerializer(serializers.Serializer):
        q = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
        tag = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
        license = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
        base_model = serializers.ListField(
            child=serializers.CharField(max_length=200), required=False
        )
        metric = serializers.ListField(
            child=serializers.CharField(max_length=300),
            required=False,
            help_text="e.g. val_loss<2.0, val_loss.min<=1.5, accuracy>0.9",
        )
        page_size = serializers.IntegerField(
            required=False, default=20, min_value=1, max_value=model_search.MAX_PAGE_SIZE
        )
        offset = serializers.IntegerField(
            required=False, default=0, min_value=0, max_value=model_search.MAX_OFFSET
        )

    @extend_schema(
        operation_id="models_search",
        parameters=[InputSerializer],
        responses={200: ModelSearchOut, **errors(400, 503)},
        summary="Search models (default-branch heads) by name, card fields, card text and the "
        "metrics of the runs that produced them",
        description=model_search.__doc__,
    )
    def get(self, request):
        params = {
            key: request.query_params.getlist(key)
            for key in ("tag", "license", "base_model", "metric")
            if key in request.query_params
        }
        for key in ("q", "page_size", "offset"):
            if key in request.query_params:
                params[key] = request.query_params[key]
        data = self.InputSerializer(data=params)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        out = model_search.model_search(
            user=request.user,
            q=d["q"],
            tags=d.get("tag"),
            licenses=d.get("license"),
            base_models=d.get("base_model"),
            metrics=d.get("metric"),
            page_size=d["page_size"],
            offset=d["offset"],
        )
        return Response(ModelSearchOut(out).data)
