//! HTML of the public pages: plain strings with inline CSS, no scripts and no external assets.
//! Every value that comes from data goes through [`esc`].

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, Utc};

use anquan_domain::compliance::Veto;
use anquan_domain::rules::RiskColour;

use super::PageData;

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "*{box-sizing:border-box}\
body{margin:0;background:#f2f4f7;color:#1d2129;font:16px/1.5 -apple-system,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif}\
main{max-width:480px;margin:0 auto;padding:12px}\
header{background:#0b4a8b;color:#fff;border-radius:12px;padding:16px}\
header .tag{font-size:13px;opacity:.85;letter-spacing:1px}\
h1{font-size:22px;margin:4px 0 6px;line-height:1.3;word-break:break-all}\
header .meta{font-size:15px;opacity:.95}\
.card{background:#fff;border-radius:12px;padding:14px 16px;margin-top:12px}\
h2{font-size:16px;margin:0 0 8px;color:#4e5969}\
.score{text-align:center}\
.big{font-size:64px;font-weight:700;line-height:1;color:#0b4a8b}\
.big small{font-size:28px;color:#86909c;font-weight:600}\
.score .label{font-size:17px;margin-top:6px}\
.score .sub{font-size:14px;color:#4e5969}\
.verdict{display:inline-block;margin-top:10px;padding:4px 14px;border-radius:16px;font-weight:600}\
.ok{background:#e8f7ee;color:#137333}.bad{background:#fdecea;color:#b3261e}\
.risk{display:flex;align-items:center;gap:12px}\
.badge{flex:none;width:64px;height:64px;border-radius:50%;display:flex;align-items:center;justify-content:center;font-size:30px;font-weight:700;color:#fff}\
.red{background:#d93025}.orange{background:#f57c00}.yellow{background:#f9c513;color:#3d2e00}.blue{background:#1a73e8}.none{background:#9aa0a6}\
.risk strong{font-size:20px}\
.veto{border:2px solid #d93025}.veto h2{color:#b3261e}\
.closed{border:2px solid #5f6368}.closed strong{font-size:20px}\
ul{margin:0;padding-left:20px}li{margin:2px 0}\
.code{color:#86909c;font-size:13px;margin-right:4px}\
dl{display:grid;grid-template-columns:auto 1fr;gap:6px 12px;margin:0}\
dt{color:#4e5969}dd{margin:0;font-weight:600;text-align:right}\
.warn{color:#b3261e}\
footer{font-size:13px;color:#86909c;text-align:center;padding:14px 4px 24px}";

/// The Chinese name of a colour and what it means.
fn colour_zh(colour: RiskColour) -> (&'static str, &'static str, &'static str) {
    match colour {
        RiskColour::Red => ("red", "红", "高风险，重点监管"),
        RiskColour::Orange => ("orange", "橙", "较高风险"),
        RiskColour::Yellow => ("yellow", "黄", "一般风险"),
        RiskColour::Blue => ("blue", "蓝", "低风险"),
    }
}

fn local(at: DateTime<Utc>, zone: FixedOffset, format: &str) -> String {
    at.with_timezone(&zone).format(format).to_string()
}

fn veto_zh(veto: &Veto, zone: FixedOffset) -> String {
    match veto {
        Veto::OverdueGovernmentHazard { deadline, .. } => format!(
            "政府检查发现的隐患逾期未整改（整改期限 {}）",
            local(*deadline, zone, "%Y-%m-%d")
        ),
        Veto::OpenMajorHazard { .. } => "存在尚未整改完成的重大事故隐患".to_owned(),
        Veto::FatalAccident { occurred_at, .. } => {
            format!("发生亡人生产安全事故（{}）", local(*occurred_at, zone, "%Y-%m-%d"))
        }
    }
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex,nofollow\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        esc(title)
    )
}

/// The public page of one enterprise.
pub(crate) fn page(data: &PageData) -> String {
    let zone = data.time_zone;
    let mut body = String::with_capacity(8 * 1024);
    let _ = write!(
        body,
        "<header><div class=\"tag\">安全生产主体责任公示</div>\
         <h1 data-testid=\"enterprise-name\">{}</h1>\
         <div class=\"meta\"><span data-testid=\"town\">{}</span> · <span data-testid=\"industry\">{}</span></div></header>",
        esc(&data.name),
        esc(&data.town),
        esc(&data.industry)
    );
    if let Some((label, since)) = data.closed {
        let _ = write!(
            body,
            "<section class=\"card closed\" data-testid=\"closed\" data-since=\"{}\">\
             <strong data-testid=\"closed-label\">{label}</strong>\
             <div class=\"sub\">自 <span data-testid=\"closed-since\">{}</span> 起不再生产经营，不评定风险等级</div></section>",
            since.to_rfc3339(),
            local(since, zone, "%Y-%m-%d")
        );
    }
    let (verdict_class, verdict) = if data.responsibility_implemented {
        ("ok", "主体责任：已落实")
    } else {
        ("bad", "主体责任：未落实")
    };
    let _ = write!(
        body,
        "<section class=\"card score\"><h2>主体责任指标</h2>\
         <div class=\"big\"><span data-testid=\"implemented\">{}</span><small> / <span data-testid=\"indicator-total\">{}</span></small></div>\
         <div class=\"label\">项已落实</div>\
         <div class=\"sub\">未落实 <span data-testid=\"not-implemented\">{}</span> 项 · 未到期 <span data-testid=\"not-yet-due\">{}</span> 项 · 不适用 <span data-testid=\"not-applicable\">{}</span> 项</div>\
         <div class=\"verdict {verdict_class}\" data-testid=\"responsibility\" data-implemented=\"{}\">{verdict}</div></section>",
        data.implemented,
        data.indicator_total,
        data.not_implemented,
        data.not_yet_due,
        data.not_applicable,
        data.responsibility_implemented
    );
    let (class, name, meaning) = data.colour.map_or(("none", "—", "暂无评定"), colour_zh);
    // A closed enterprise has no colour: its page shows the closure above instead.
    if data.closed.is_none() {
        let _ = write!(
            body,
            "<section class=\"card risk\" data-testid=\"risk\" data-colour=\"{}\">\
         <div class=\"badge {class}\" data-testid=\"risk-badge\">{name}</div>\
         <div><div>风险等级</div><strong data-testid=\"risk-colour\">{}</strong><div class=\"sub\">{meaning}</div></div></section>",
            data.colour.map_or("none", RiskColour::name),
            if data.colour.is_some() {
                format!("{name}色")
            } else {
                "暂无".to_owned()
            }
        );
    }
    if !data.vetoes.is_empty() {
        body.push_str("<section class=\"card veto\" data-testid=\"vetoes\"><h2>否决项</h2><ul>");
        for veto in &data.vetoes {
            let _ = write!(body, "<li data-testid=\"veto\">{}</li>", esc(&veto_zh(veto, zone)));
        }
        body.push_str("</ul></section>");
    }
    body.push_str("<section class=\"card\"><h2>未落实的指标</h2>");
    if data.missing.is_empty() {
        body.push_str("<p data-testid=\"missing-none\">无</p>");
    } else {
        body.push_str("<ul>");
        for (code, name) in &data.missing {
            let _ = write!(
                body,
                "<li data-testid=\"missing-indicator\" data-code=\"{}\"><span class=\"code\">{}</span>{}</li>",
                esc(code),
                esc(code),
                esc(name)
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");
    let last_inspection = data
        .last_inspection
        .map_or_else(|| "暂无".to_owned(), |at| local(at, zone, "%Y-%m-%d"));
    let overdue_class = if data.overdue_hazards > 0 {
        " class=\"warn\""
    } else {
        ""
    };
    let _ = write!(
        body,
        "<section class=\"card\"><h2>监督检查</h2><dl>\
         <dt>最近一次检查</dt><dd data-testid=\"last-inspection\">{}</dd>\
         <dt>未整改完成的隐患</dt><dd data-testid=\"open-hazards\">{}</dd>\
         <dt>其中逾期未整改</dt><dd data-testid=\"overdue-hazards\"{overdue_class}>{}</dd></dl></section>",
        esc(&last_inspection),
        data.open_hazards,
        data.overdue_hazards
    );
    body.push_str("<section class=\"card\"><h2>安全生产服务机构</h2>");
    match &data.agency {
        Some((name, grade)) => {
            let _ = write!(
                body,
                "<dl><dt>服务机构</dt><dd data-testid=\"agency-name\">{}</dd>\
                 <dt>信用等级</dt><dd data-testid=\"agency-grade\">{}</dd></dl>",
                esc(name),
                grade.map_or_else(|| "暂未评级".to_owned(), |grade| format!("{grade}级"))
            );
        }
        None => body.push_str("<p data-testid=\"agency-none\">暂无有效服务合同</p>"),
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        "<section class=\"card\"><h2>反映安全问题</h2><p data-testid=\"town-contact\">{}</p></section>",
        esc(&data.contact)
    );
    let _ = write!(
        body,
        "<footer>数据截至 <time data-testid=\"as-of\" datetime=\"{}\">{}</time>（UTC{}）<br>安全生产云平台 · 扫码公示</footer>",
        data.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        local(data.at, zone, "%Y-%m-%d %H:%M"),
        zone
    );
    document(&format!("{} · 安全生产公示", data.name), &body)
}

const POSTER_STYLE: &str = "@page{size:A4;margin:15mm}*{box-sizing:border-box}\
body{margin:0;font-family:'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;color:#000}\
.sheet{width:180mm;min-height:260mm;margin:0 auto;padding:10mm 0;text-align:center;border:3mm solid #0b4a8b;border-radius:6mm}\
h1{font-size:30pt;margin:6mm 0 2mm;color:#0b4a8b;letter-spacing:2pt}\
h2{font-size:20pt;margin:0 10mm 6mm;word-break:break-all}\
.qr{width:110mm;height:110mm;margin:0 auto}.qr svg{width:100%;height:100%}\
.how{font-size:16pt;margin:6mm 15mm 3mm;line-height:1.5}\
.url{font-size:9pt;color:#444;word-break:break-all;margin:0 15mm}\
.contact{font-size:12pt;margin:6mm 15mm 0}\
.note{font-size:10pt;color:#444;margin-top:4mm}";

/// The A4 poster: the enterprise's name, the QR code and how to use it.
pub(crate) fn poster(name: &str, url: &str, qr_svg: &str, contact: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex,nofollow\">\
         <title>{title} · 安全码</title><style>{POSTER_STYLE}</style></head><body><div class=\"sheet\">\
         <h1>安全生产公示码</h1><h2 data-testid=\"poster-name\">{title}</h2>\
         <div class=\"qr\" data-testid=\"poster-qr\">{qr_svg}</div>\
         <p class=\"how\">请用手机扫描二维码，查看本企业安全生产主体责任落实情况、风险等级和隐患整改情况。</p>\
         <p class=\"url\">{url}</p><p class=\"contact\">{contact}</p>\
         <p class=\"note\">请张贴于车间、仓库等醒目位置；二维码更换后，旧码立即失效。</p></div></body></html>",
        title = esc(name),
        url = esc(url),
        contact = esc(contact),
    )
}

/// The page for an unknown or rotated-away token.
pub(crate) fn not_found() -> String {
    document(
        "二维码无效",
        "<section class=\"card\" data-testid=\"not-found\"><h2>二维码无效或已更换</h2>\
         <p>未找到该二维码对应的企业。企业更换二维码后，旧码立即失效，请扫描现场张贴的最新二维码。</p></section>",
    )
}

/// The page for an internal failure.
pub(crate) fn failed() -> String {
    document(
        "暂时无法显示",
        "<section class=\"card\"><h2>暂时无法显示</h2><p>服务暂时不可用，请稍后再试。</p></section>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
