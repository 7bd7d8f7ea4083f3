from django import forms
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from dispatch_site.api.throttling import LimitedPasswordChangeForm, client_ip
from tenants import services

from .views_base import run_service


class SignupForm(forms.Form):
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, min_length=10, max_length=256)


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = run_service(request, services.user_register, email=form.cleaned_data["email"],
                           password=form.cleaned_data["password"], source_ip=client_ip(request))
        if user:
            login(request, user, backend="dispatch_site.api.throttling.ThrottledModelBackend")
            messages.success(request, "Welcome to Dispatch. Create your first tenant.")
            return redirect("portal:tenant_create")
    return render(request, "portal/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request):
    form = LimitedPasswordChangeForm(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        messages.success(request, "Password changed.")
        return redirect("portal:tenants")
    return render(request, "portal/password_change.html", {"form": form})
