"""End to end in a real headless Chromium: sign up, create a tenant, add and verify a domain,
create a credential, send through the API with it, and find the message in the log.
Screenshots of each step go to test-artifacts/portal/."""
import shutil
from pathlib import Path

import pytest
import requests
from django.conf import settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "portal"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")


@pytest.fixture(scope="module")
def chrome():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (scripts/ensure-services.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


class Browser:
    def __init__(self, driver, base_url):
        self.driver, self.base_url = driver, base_url

    def open(self, path):
        self.driver.get(self.base_url + path)

    def find(self, css):
        """The element, waiting for it to appear (a click may still be loading the next page)."""
        from selenium.webdriver.common.by import By

        return self.wait_for(lambda: self.driver.find_element(By.CSS_SELECTOR, css))

    def fill(self, css, value):
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def submit(self, css="main form.stack button[type=submit]"):
        self.find(css).click()

    def wait_for(self, condition, timeout=10):
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        # While a page is being replaced, element lookups fail in several ways (no such element,
        # stale element, node not in the document): keep trying until the timeout.
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(WebDriverException,)).until(
            lambda d: condition())

    def follow(self, css):
        """Click a link and wait until its page has loaded."""
        target = self.find(css).get_attribute("href")
        self.find(css).click()
        self.wait_for(lambda: self.driver.current_url == target and
                      self.driver.execute_script("return document.readyState") == "complete")

    def log_in(self, user, password="correct horse battery staple"):
        self.open("/portal/login")
        self.fill("#id_username", user.email)
        self.fill("#id_password", password)
        self.submit()
        self.wait_for(lambda: self.path().startswith("/portal/tenants"))

    def text(self):
        # Read in one script call: an element handle could go stale while the next page loads.
        return self.driver.execute_script("var m = document.querySelector('main'); return m ? m.innerText : '';")

    def headings(self):
        """The h1/h2 texts of the page in one script call. Waiting on a heading, not on body text,
        because the page a form is submitted from can mention the same words (the empty domain
        list says "you will get the DNS records to publish")."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('main h1, main h2')).map(e => e.innerText);")

    def path(self):
        return self.driver.current_url[len(self.base_url):]

    def shot(self, name):
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_sign_up_to_a_sent_message_in_the_log(chrome, live_server, dns_server):
    from domains.models import Domain
    from tenants.models import Tenant

    b = Browser(chrome, live_server.url)
    b.open("/portal/signup")
    b.fill("#id_email", "e2e@example.org")
    b.fill("#id_password", "a-long-enough-passphrase")
    b.shot("01-signup")
    b.submit()
    b.wait_for(lambda: b.path() == "/portal/tenants/new")

    b.fill("#id_tenant_name", "Acme Mail")
    b.submit()
    b.wait_for(lambda: b.path().startswith("/portal/t/") and "Dashboard" in b.text())
    tenant = Tenant.objects.get(name="Acme Mail")
    assert b.path() == f"/portal/t/{tenant.id}/"
    b.shot("02-dashboard-empty")

    b.follow(f'aside a[href="/portal/t/{tenant.id}/domains"]')
    b.fill("#id_domain", "example.com")
    b.submit()
    b.wait_for(lambda: "/domains/" in b.path() and "DNS records to publish" in b.headings())
    domain = Domain.objects.get(tenant=tenant)
    b.shot("03-domain-records")
    copy = b.find(f'button[data-copy="{domain.verification_value}"]')
    copy.click()
    b.wait_for(lambda: copy.text == "Copied")
    # Publish the records the page shows, as the user would at their DNS host.
    dns_server.add(domain.verification_host, "TXT", domain.verification_value)
    dns_server.add(domain.dkim_host, "TXT", f"v=DKIM1; k=rsa; p={domain.dkim_public_key}")
    dns_server.add(domain.name, "TXT", f"v=spf1 include:{settings.DISPATCH_HOSTNAME} ~all")
    b.find("#verify").click()
    b.wait_for(lambda: "is verified: you can send from it" in b.text())
    b.shot("04-domain-verified")

    b.follow(f'aside a[href="/portal/t/{tenant.id}/credentials"]')
    b.fill("#id_label", "e2e")
    b.submit()
    b.wait_for(lambda: "Save this password now" in b.text())
    password = b.find("#new-password").text
    username = b.find(".secret code").text
    b.shot("05-credential-created")

    r = requests.post(f"{live_server.url}/api/v1/dispatch/tenants/{tenant.id}/send", auth=(username, password), json={
        "from": "Acme <hello@example.com>", "to": ["alice@example.org"], "subject": "Your e2e receipt",
        "html_body": "<h1 style='color:#0b57d0'>Thanks, Alice</h1><p>Order <b>#42</b> is on its way.</p>",
        "text_body": "Thanks, Alice. Order #42 is on its way.", "tags": ["receipt"],
    }, timeout=30)
    assert r.status_code in (200, 201, 202), r.text

    b.follow(f'aside a[href="/portal/t/{tenant.id}/emails"]')
    b.wait_for(lambda: "Your e2e receipt" in b.text())
    b.shot("06-email-log")
    b.follow("main table a[href*='/emails/']")
    b.wait_for(lambda: "Recipients and delivery" in b.text())
    assert "alice@example.org" in b.text()
    iframe = b.find("iframe.preview")
    assert iframe.get_attribute("sandbox") == ""
    chrome.switch_to.frame(iframe)
    assert "Thanks, Alice" in b.find("body").text
    chrome.switch_to.default_content()
    b.shot("07-email-detail")

    b.follow(f'aside a[href="/portal/t/{tenant.id}/"]')
    b.wait_for(lambda: "Per day" in b.text())
    assert b.find("svg[role=img] rect")
    b.shot("08-dashboard-with-mail")


def test_template_editor_previews_while_typing(chrome, live_server, user, tenant):
    b = Browser(chrome, live_server.url)
    b.log_in(user)

    b.open(f"/portal/t/{tenant.id}/templates/new")
    b.fill("#id_name", "Welcome")
    b.fill("#id_subject", "Welcome, {{first_name}}")
    b.fill("#id_html_body", "<h1>Hello {{first_name}}</h1><p>Your plan: {{plan}}</p>")
    b.fill("#sample-variables", '{"first_name": "Ada"}')
    b.wait_for(lambda: b.find("#preview-subject").text == "Welcome, Ada")
    assert "plan" in b.find("#preview-missing").text
    chrome.switch_to.frame(b.find("#preview-html"))
    assert b.find("h1").text == "Hello Ada"
    chrome.switch_to.default_content()
    b.shot("09-template-live-preview")
    b.fill("#id_subject", "Welcome, {{ broken")
    b.wait_for(lambda: "Invalid placeholder" in b.find("#preview-error").text)

    b.open("/portal/dns-providers")
    assert b.find("#id_token").is_displayed() and not b.find("#id_access_key").is_displayed()
    from selenium.webdriver.support.ui import Select

    Select(b.find("#id_provider")).select_by_value("route53")
    assert b.find("#id_access_key").is_displayed() and not b.find("#id_token").is_displayed()
    b.shot("10-dns-providers")


def test_webhook_and_suppression_pages_render(chrome, live_server, user, tenant, settings):
    from sending.suppressions import suppression_add
    from webhooks.services import endpoint_create, endpoint_disable, endpoint_send_test

    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _ = endpoint_create(tenant=tenant, url="https://hooks.example.com/dispatch", events=["delivered", "bounced"])
    endpoint_send_test(tenant=tenant, endpoint_id=endpoint.id)
    gone, _ = endpoint_create(tenant=tenant, url="https://old.example.com/hook", events=["bounced"])
    endpoint_disable(endpoint=gone, reason="The endpoint answered 410 Gone.")
    suppression_add(tenant=tenant, email="bounced@example.org", reason="550 5.1.1 user unknown", source="bounce")

    b = Browser(chrome, live_server.url)
    b.log_in(user)
    b.open(f"/portal/t/{tenant.id}/")
    assert "Webhook disabled" in b.text()
    b.open(f"/portal/t/{tenant.id}/webhooks/{endpoint.id}")
    assert "webhook.test" in b.text()
    b.find("button[aria-label^='Replay delivery']").click()  # a small button in a table row submits its form
    b.wait_for(lambda: "Delivery queued again" in b.text())
    b.shot("11-webhook")
    b.open(f"/portal/t/{tenant.id}/suppressions")
    assert "bounced@example.org" in b.text()
    b.shot("12-suppressions")
    chrome.set_window_size(390, 844)  # a phone
    try:
        b.open(f"/portal/t/{tenant.id}/")
        assert chrome.execute_script("return document.documentElement.scrollWidth") <= 390
        b.shot("13-dashboard-phone")
    finally:
        chrome.set_window_size(1280, 1000)
    b.find("header form button[type=submit]").click()
    b.wait_for(lambda: b.path().startswith("/portal/login"))
