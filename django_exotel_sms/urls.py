from django.urls import path

app_name = "django_exotel_sms"
urlpatterns: list = []
