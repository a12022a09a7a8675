"""Content-Security-Policy on every response (Django 5.2 has no built-in one).

The pages load scripts and styles from /static/ only, with no inline script, handler or style, so
the policy can be strict in development too: a page that breaks it breaks in `make run`, long
before production. A view that needs something else (third-party docs pages, for instance) sets
its own header, which is left alone.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
