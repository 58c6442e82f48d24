"""The web console in a real browser: Debian's headless chromium, driven by Selenium through
chromedriver, against a real broker. Checks what a person sees (a topic the test made, its records: JSON
pretty-printed, binary as hex, `<script>` as text; a group's lag), performs one allowed action (produce a
test message), and saves a screenshot of each view under the test's tmp_path."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore.broker.embedded import EmbeddedBroker
from logstore.client import Consumer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from logstore.records import Record, build_batch
from tests.conftest import Stubs
from tests.console_http import call, poll_records

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
JSON_VALUE = {"order": 17, "items": ["apple", "pear"], "paid": True}
BINARY_VALUE = bytes([0, 159, 255, 16, 32])
PENDING = (10, 30, 20)
END = 3 + sum(PENDING)
"""The log end offset of partition 0 once the test's own records are in (before the tailed one)."""
SCRIPT_VALUE = "<script>document.title='owned'</script><img src=x onerror=alert(1)>"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless chromium; .ci/run installs it (Debian's chromium and chromium-driver)."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "the browser test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def open_view(driver: WebDriver, url: str) -> None:
    """Go to `url` and wait until the page says the view is drawn (`data-ready` is its hash)."""
    driver.get(url)
    hash_ = url.split("#", 1)[1] if "#" in url else ""
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready") in ("#" + hash_, "error")
    )
    assert driver.execute_script("return document.body.dataset.ready") == "#" + hash_, text_of(
        driver, "error"
    )


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def make_data(broker: EmbeddedBroker, stubs: Stubs) -> None:
    stubs.create_topic("orders", partitions=2)
    records = [
        Record(
            0,
            int(time.time() * 1000),
            key=b"order-17",
            value=json.dumps(JSON_VALUE).encode(),
            headers=[("source", b"checkout")],
        ),
        Record(1, int(time.time() * 1000), key=None, value=BINARY_VALUE),
        Record(2, int(time.time() * 1000), key=b"evil", value=SCRIPT_VALUE.encode()),
    ]
    assert stubs.produce_one("orders", 0, build_batch(records)).error_code == 0
    with Consumer(
        "orders",
        bootstrap=broker.address,
        group_id="billing",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    ) as consumer:
        poll_records(consumer, 3)
        consumer.commit()
    # Load in rounds between the console's samples, so its charts have a shape to draw.
    for round_ in range(3):
        wait_for_rates(broker, round_ + 1)
        batch = build_batch([b"pending-%d-%d" % (round_, i) for i in range(PENDING[round_])])
        assert stubs.produce_one("orders", 0, batch).error_code == 0
        assert len(stubs.values("orders", 0)) == 3 + sum(PENDING[: round_ + 1]), "read back: records out"
    wait_for_rates(broker, 4)


def wait_for_rates(broker: EmbeddedBroker, count: int) -> None:
    """Until the console's sampler (every few seconds) has `count` rates; bounded, not a sleep."""
    deadline = time.monotonic() + 60
    while len(call(broker.http_url, "GET", "/api/rates")[1]["rates"]) < count:
        assert time.monotonic() < deadline, "the console's sampler took no samples"
        time.sleep(0.5)


def test_a_person_sees_topics_records_and_lag_and_can_produce(
    broker: EmbeddedBroker, stubs: Stubs, browser: WebDriver, tmp_path: Path
) -> None:
    make_data(broker, stubs)
    base = broker.http_url + "/console/"

    open_view(browser, base + "#/overview")
    assert "Overview" in text_of(browser, "view")
    assert "Listeners" in text_of(browser, "view") and broker.address in text_of(browser, "view")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rate-charts svg path")) >= 2, "both charts have lines"
    browser.save_screenshot(str(tmp_path / "overview.png"))

    open_view(browser, base + "#/topics")
    assert "orders" in text_of(browser, "view")
    open_view(browser, base + "#/topic/orders")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#view table tbody tr")]
    assert rows[0].startswith(f"0 0 {END}"), rows[0]
    browser.save_screenshot(str(tmp_path / "topic.png"))

    open_view(browser, base + "#/browse/orders/0?offset=0")
    cells = browser.find_elements(By.CSS_SELECTOR, "#records tbody tr")
    values = [row.find_elements(By.TAG_NAME, "td")[4].text for row in cells[:3]]
    assert values[0] == "JSON\n" + json.dumps(JSON_VALUE, indent=2), values[0]
    assert values[1] == "HEX\n00 9f ff 10 20"
    assert values[2] == "TEXT\n" + SCRIPT_VALUE, "markup in a value is shown as text"
    assert browser.title == "logstore console", "no script from a record ran"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#records img, #records script")) == 0
    assert "source:\nTEXT\ncheckout" in cells[0].text
    browser.save_screenshot(str(tmp_path / "messages.png"))
    browser.find_element(By.ID, "tail").click()  # live tail: a record produced now shows up by itself
    assert stubs.produce_one("orders", 0, build_batch([b"tailed"])).error_code == 0
    last = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: next(
            (
                r.text
                for r in d.find_elements(By.CSS_SELECTOR, "#records tbody tr")[-1:]
                if r.text.startswith(f"{END} ")
            ),
            None,
        )
    )
    assert last is not None and last.endswith("TEXT\ntailed"), last

    end_now = END + 1  # with the tailed record
    open_view(browser, base + "#/group/billing")
    lag_rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#lag tbody tr")]
    assert any(row.startswith(f"orders 0 3 {end_now} {end_now - 3}") for row in lag_rows), lag_rows
    browser.save_screenshot(str(tmp_path / "group.png"))
    reset = browser.find_element(By.ID, "reset-offsets")
    reset.find_element(By.TAG_NAME, "button").click()  # the dry run: a preview, nothing moves
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#reset-preview tbody tr"))
    preview = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#reset-preview tbody tr")]
    assert "orders 0 3 0" in preview, preview
    assert call(broker.http_url, "GET", "/api/groups/billing")[1]["partitions"][0]["committed_offset"] == 3

    open_view(browser, base + "#/topic/orders")
    form = browser.find_element(By.ID, "produce")
    form.find_element(By.NAME, "value").send_keys('{"hello": "from the console"}')
    form.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "produced"))
    assert text_of(browser, "produced") == f"Produced at offset {end_now} of partition 0"
    assert stubs.values("orders", 0, end_now) == [b'{"hello": "from the console"}']
    browser.save_screenshot(str(tmp_path / "produced.png"))
    for name in ("overview", "topic", "messages", "group", "produced"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    print(f"screenshots in {tmp_path}")


def test_an_error_from_the_api_is_shown_in_the_page(broker: EmbeddedBroker, browser: WebDriver) -> None:
    browser.get(broker.http_url + "/console/#/topic/missing")
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "error"
    )
    assert text_of(browser, "error").startswith("UNKNOWN_TOPIC: ")
    assert "missing" in text_of(browser, "error")


def test_a_share_group_shows_in_flight_and_archived_records_and_delivery_counts(
    broker: EmbeddedBroker, stubs: Stubs, browser: WebDriver, tmp_path: Path
) -> None:
    from tests.test_broker_metrics import share_records

    share_records(broker, stubs)  # "workers" on "tasks": 7 accepted, 2 rejected (archived), 1 released
    open_view(browser, broker.http_url + "/console/#/groups")
    assert "workers share EMPTY 0" in text_of(browser, "view")
    open_view(browser, broker.http_url + "/console/#/share/workers")
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#view table tbody tr")]
    api = call(broker.http_url, "GET", "/api/share-groups/workers")[1]["partitions"][0]
    assert rows[0] == " ".join(
        str(api[k])
        for k in (
            "topic",
            "partition",
            "start_offset",
            "end_offset",
            "log_end_offset",
            "in_flight",
            "acquired",
            "archived",
            "lag",
        )
    ) + " " + ", ".join(f"{times}\u00d7: {n}" for times, n in api["delivery_counts"].items())
    assert api["archived"] == 2 and api["delivery_counts"] == {"0": 1}  # the released one
    assert "share.delivery.count.limit" in text_of(browser, "view")
    browser.save_screenshot(str(tmp_path / "share.png"))
