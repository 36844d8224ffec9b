import pytest
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
def test_dbg(tab, slots, session_type):
    tab.page.goto(tab.origin + "/book/")
    tab.page.wait_for_load_state("networkidle")
    print(tab.page.locator("main").inner_html()[:3000])
    tab.page.screenshot(path="/tmp/dbg.png", full_page=True)
