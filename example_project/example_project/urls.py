from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Exotel's status and click callbacks (signed URLs); must be reachable by Exotel.
    path("exotel/", include("django_exotel_sms.urls")),
    path("api/sms/", include("django_exotel_sms.api.urls")),
    path("", include("demo.urls")),
]
