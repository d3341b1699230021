from django.urls import path

from hub.jobs import api, profile_api

urlpatterns = [
    path("jobs", api.JobListCreateApi.as_view()),
    path("jobs/schema", api.SchemaApi.as_view()),
    path("jobs/validate", api.ValidateApi.as_view()),
    path("jobs/profile-compare", api.ProfileCompareApi.as_view()),
    path("jobs/profile-diff", profile_api.ProfileDiffApi.as_view()),
    path("jobs/<str:job_id>", api.JobDetailApi.as_view()),
    path("jobs/<str:job_id>/cancel", api.JobCancelApi.as_view()),
    path("jobs/<str:job_id>/relaunch", api.JobRelaunchApi.as_view()),
    path("jobs/<str:job_id>/logs", api.JobLogsApi.as_view()),
    path("jobs/<str:job_id>/logs/stream", api.JobLogStreamApi.as_view()),
    path("jobs/<str:job_id>/artifacts/<path:path>", api.JobArtifactDownloadApi.as_view()),
    path("jobs/<str:job_id>/profile", api.ProfileApi.as_view()),
    path("jobs/<str:job_id>/profile/memory", profile_api.ProfileMemoryApi.as_view()),
    path("jobs/<str:job_id>/worker/start", api.WorkerStartApi.as_view()),
    path("jobs/<str:job_id>/worker/heartbeat", api.WorkerHeartbeatApi.as_view()),
    path("jobs/<str:job_id>/worker/logs", api.WorkerLogsApi.as_view()),
    path("jobs/<str:job_id>/worker/chunks/missing", api.WorkerChunksMissingApi.as_view()),
    path("jobs/<str:job_id>/worker/chunks/<str:digest>", api.WorkerChunkUploadApi.as_view()),
    path("jobs/<str:job_id>/worker/artifacts", api.WorkerArtifactApi.as_view()),
    path("jobs/<str:job_id>/worker/profile", api.WorkerProfileApi.as_view()),
    path("jobs/<str:job_id>/worker/finish", api.WorkerFinishApi.as_view()),
    path("jobs/<str:job_id>/worker/requeue", api.WorkerRequeueApi.as_view()),
]
