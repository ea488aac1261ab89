// Context menu on images and videos: a fresh check of this file, and "report as fake" for the review queue.

export const MENU = Object.freeze({
  check: 'credence-check', report: 'credence-report',
  checkVideo: 'credence-check-video', reportVideo: 'credence-report-video',
});
const CHECKS = new Set([MENU.check, MENU.checkVideo]);
const REPORTS = new Set([MENU.report, MENU.reportVideo]);

export async function createMenus(ext) {
  await ext.contextMenus.removeAll();
  ext.contextMenus.create({ id: MENU.check, title: 'Check this image with Credence', contexts: ['image'] });
  ext.contextMenus.create({ id: MENU.report, title: 'Report as fake to Credence…', contexts: ['image'] });
  ext.contextMenus.create({ id: MENU.checkVideo, title: 'Check this video with Credence', contexts: ['video'] });
  ext.contextMenus.create({ id: MENU.reportVideo, title: 'Report this video as fake to Credence…', contexts: ['video'] });
}

/** The report form for one image, in its own small window (a worker cannot ask for a note). */
export function reportPageUrl(ext, imageUrl, pageIsPrivate = false) {
  const query = new URLSearchParams({ url: imageUrl });
  if (pageIsPrivate) query.set('private', '1');
  return ext.runtime.getURL(`report/report.html?${query}`);
}

export async function onMenuClick(ext, service, info, tab) {
  // A streamed video (blob:, MediaSource) has no address the server could fetch: nothing to send.
  if (!info.srcUrl || (info.mediaType === 'video' && !/^https?:/i.test(info.srcUrl))) return;
  if (CHECKS.has(info.menuItemId)) {
    // The page's content script knows which element it is and can read blob: images;
    // it answers with a forced 'check' that bypasses every cache of the extension.
    try {
      await ext.tabs.sendMessage(tab.id, { type: 'force-check', url: info.srcUrl }, { frameId: info.frameId ?? 0 });
    } catch {
      // The frame's referrer policy is unknown here: the default one.
      await service.check(tab?.id ?? null, [{ url: info.srcUrl }], { force: true, page: info.frameUrl ?? info.pageUrl ?? null });
    }
  } else if (REPORTS.has(info.menuItemId)) {
    await ext.windows.create({
      url: reportPageUrl(ext, info.srcUrl, Boolean(tab?.incognito)),
      type: 'popup',
      width: 480,
      height: 460,
    });
  }
}
