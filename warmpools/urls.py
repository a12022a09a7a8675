from django.urls import path

from warmpools import views

app_name = "warmpools"

urlpatterns = [
    path("", views.pool_list, name="list"),
    path("classes", views.pool_classes, name="classes"),
    path("<uuid:pk>/", views.pool_detail, name="detail"),
    path("<uuid:pk>/delete", views.pool_delete, name="delete"),
    path("<uuid:pk>/environments", views.environment_list, name="environments"),
    path("<uuid:pk>/environments/<uuid:environment_id>", views.environment_result, name="environment"),
    path("<uuid:pk>/environments/<uuid:environment_id>/delete", views.environment_delete, name="environment-delete"),
]
