"""The service's front page in a real browser: headless Chromium (Debian's chromium and chromium-driver) opens
/, expands POST /predict, runs "Try it out" with the prefilled example and sees a species in the answer.

PENGUIN_SCREENSHOT=docs/images/front-page.png also saves the page for the README."""

import os

import pytest
from conftest import REPO_ROOT, required


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = required("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(required("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_front_page_is_the_services_own_and_try_it_out_classifies_a_penguin(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as page
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(served.url + "/")
    assert browser.title == "penguin-serve"
    header = browser.find_element(By.TAG_NAME, "header").text
    model_version = served.get("/health").json()["model_version"]
    assert f"model {model_version}" in header and "/predict" in header
    # Swagger UI writes the spec's description into .info after the element exists: wait for it, do not read it once.
    assert wait.until(page.text_to_be_present_in_element((By.CSS_SELECTOR, ".swagger-ui .info"), "XGBoost"))
    for boilerplate in ("BentoML", "Slack", "Twitter", "Contact", "customize this README"):
        assert boilerplate not in browser.find_element(By.TAG_NAME, "body").text

    operation = wait.until(page.presence_of_element_located((By.ID, "operations-Prediction-predict")))
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    try_it = operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn:not(.cancel)")
    if try_it:  # the page opens the editor already (tryItOutEnabled); older Swagger UIs need the click
        try_it[0].click()
    wait.until(lambda _: operation.find_element(By.CSS_SELECTOR, "button.execute")).click()
    answer = wait.until(lambda _: operation.find_element(By.CSS_SELECTOR, ".live-responses-table"))
    wait.until(lambda _: '"prediction"' in answer.text)
    assert '"prediction": "Adelie"' in answer.text and "\n200\n" in answer.text  # the prefilled example: an Adelie
    screenshot = os.environ.get("PENGUIN_SCREENSHOT")
    if screenshot:
        browser.save_screenshot(str(REPO_ROOT / screenshot))
