from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("exotel/", include("django_exotel_sms.urls")),
    path("api/sms/", include("django_exotel_sms.api.urls")),
]
