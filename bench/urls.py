"""Like the example project's URLs: the admin and the callback views under ``exotel/``."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("exotel/", include("django_exotel_sms.urls")),
]
