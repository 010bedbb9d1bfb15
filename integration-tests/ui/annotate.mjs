// An operator annotates a task in the browser tool, in Debian's headless Chromium:
//   node annotate.mjs <gateway base URL> <task id> <screenshot path>
// Draws, labels, deletes, undoes and redoes, moves a box, switches image, goes offline
// (the session is kept in the browser across a reload), comes back and submits. Prints one
// JSON line with what it saw; the Rust test checks the task's events.
import { chromium } from "playwright-core";

const [base, task, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/ui/`);
  await page.fill("#token", "anna-token");
  await page.click("#login button");
  const row = page.locator(`#queue li[data-task="${task}"] button`);
  await row.waitFor();
  await row.click();
  await page.waitForFunction(() => document.getElementById("step").dataset.step === "annotate");
  const canvas = await page.locator("#canvas").boundingBox();
  const drag = async (x0, y0, x1, y1) => {
    await page.mouse.move(canvas.x + x0, canvas.y + y0);
    await page.mouse.down();
    await page.mouse.move(canvas.x + (x0 + x1) / 2, canvas.y + (y0 + y1) / 2, { steps: 3 });
    await page.mouse.move(canvas.x + x1, canvas.y + y1, { steps: 3 });
    await page.mouse.up();
  };
  await drag(100, 100, 200, 260);          // box A
  await page.keyboard.press("2");          // class 2
  await drag(300, 120, 380, 260);          // box B
  await page.keyboard.press("3");
  await drag(450, 50, 520, 120);           // a mistake
  await page.keyboard.press("Delete");
  await page.keyboard.press("Control+z");  // the mistake is back...
  await page.keyboard.press("Control+y");  // ...and gone again
  await drag(150, 150, 160, 155);          // move A by (10, 5)
  await page.keyboard.press("]");          // image 2
  await drag(40, 40, 140, 200);            // box D
  await page.keyboard.press("1");
  seen.pending_before_offline = await page.textContent("#pending");
  await page.screenshot({ path: shot });
  // offline: the submit fails, the session stays in the browser, a reload keeps it
  await context.setOffline(true);
  await page.click("#submit");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Offline"));
  seen.offline_status = await page.textContent("#status");
  await context.setOffline(false);
  await page.reload();
  const mine = page.locator(`#queue li[data-task="${task}"] button`);
  await mine.waitFor();
  seen.button_after_reload = await mine.textContent();
  await mine.click();
  await page.waitForFunction(() => document.getElementById("step").dataset.step === "annotate");
  seen.pending_after_reload = await page.textContent("#pending");
  await page.locator("#canvas").focus();
  await page.keyboard.press("Control+Enter");
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Sent"));
  seen.sent_status = await page.textContent("#status");
  // the tool looks again while the service generates the result ("waiting"), then shows where it went
  await page.waitForFunction(() => !["annotate", "waiting"].includes(document.getElementById("step").dataset.step));
  seen.step_after = await page.evaluate(() => document.getElementById("step").dataset.step);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
