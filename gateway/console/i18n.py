"""The console's words in the gateway's four languages, and dates and money in the reader's locale (Babel).

``MESSAGES`` maps a message id to its text per language; ``tests/unit/test_console_catalogue.py`` checks
that every id has every language and that the templates use no id missing here. Texts may hold
``{name}`` placeholders, filled by ``Translator.__call__``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from services.kit.config import LANGUAGES

BABEL_LOCALES = {"en": "en_GB", "zh-Hans": "zh_Hans_CN", "zh-Hant": "zh_Hant_TW", "es": "es_ES"}
LANGUAGE_NAMES = {"en": "English", "zh-Hans": "简体中文", "zh-Hant": "繁體中文", "es": "Español"}

M = dict[str, str]


def _m(en: str, hans: str, hant: str, es: str) -> M:
    return {"en": en, "zh-Hans": hans, "zh-Hant": hant, "es": es}


MESSAGES: dict[str, M] = {
    "app": _m("CareLoop console", "CareLoop 控制台", "CareLoop 控制台", "Consola CareLoop"),
    "sign_in": _m("Sign in", "登录", "登入", "Iniciar sesión"),
    "sign_out": _m("Sign out", "退出", "登出", "Cerrar sesión"),
    "username": _m("User name", "用户名", "使用者名稱", "Usuario"),
    "password": _m("Password", "密码", "密碼", "Contraseña"),
    "language": _m("Language", "语言", "語言", "Idioma"),
    "branch": _m("Branch", "门店", "門店", "Sucursal"),
    "switch_branch": _m("Switch branch", "切换门店", "切換門店", "Cambiar sucursal"),
    "all_branches": _m("All branches", "全部门店", "全部門店", "Todas las sucursales"),
    "find": _m("Find a member", "查找会员", "查找會員", "Buscar socio"),
    "find_hint": _m("Phone, card number or name — results appear as you type; Enter opens the first.",
                    "手机号、卡号或姓名——边输入边显示结果；回车打开第一个。",
                    "手機號、卡號或姓名——邊輸入邊顯示結果；Enter 開啟第一個。",
                    "Teléfono, número de tarjeta o nombre: los resultados aparecen al escribir; Intro abre el primero."),
    "no_results": _m("No member found.", "没有找到会员。", "沒有找到會員。", "No se encontró ningún socio."),
    "shortcuts": _m("Shortcuts: / find · g f follow-ups · g k KPIs", "快捷键：/ 查找 · g f 回访 · g k 指标",
                    "快捷鍵：/ 查找 · g f 回訪 · g k 指標", "Atajos: / buscar · g f seguimientos · g k KPI"),
    "member": _m("Member", "会员", "會員", "Socio"),
    "name": _m("Name", "姓名", "姓名", "Nombre"),
    "phone": _m("Phone", "手机号", "手機號", "Teléfono"),
    "card": _m("Card number", "卡号", "卡號", "Número de tarjeta"),
    "status": _m("Status", "状态", "狀態", "Estado"),
    "home_branch": _m("Home branch", "所属门店", "所屬門店", "Sucursal de origen"),
    "birth_date": _m("Date of birth", "出生日期", "出生日期", "Fecha de nacimiento"),
    "id_document": _m("ID document", "证件", "證件", "Documento"),
    "tier": _m("Tier", "等级", "等級", "Nivel"),
    "next_tier": _m("Next tier: {tier}", "下一等级：{tier}", "下一等級：{tier}", "Siguiente nivel: {tier}"),
    "still_needed": _m("Still needed", "尚需", "尚需", "Falta"),
    "top_tier": _m("Top tier reached.", "已是最高等级。", "已是最高等級。", "Nivel máximo alcanzado."),
    "points": _m("Points", "积分", "積分", "Puntos"),
    "balance": _m("Balance", "余额", "餘額", "Saldo"),
    "expiring_soonest": _m("Expiring soonest", "最先到期", "最先到期", "Caducan antes"),
    "expires_on": _m("Expires on", "到期日", "到期日", "Caduca el"),
    "never": _m("never", "永不", "永不", "nunca"),
    "stored_value": _m("Stored value", "储值", "儲值", "Saldo prepago"),
    "principal": _m("Paid in", "本金", "本金", "Aportado"),
    "bonus": _m("Bonus", "赠送", "贈送", "Bonificación"),
    "coupons": _m("Coupons", "优惠券", "優惠券", "Cupones"),
    "benefits": _m("Benefits and quotas this year", "本年度权益与额度", "本年度權益與額度",
                   "Beneficios y cupos de este año"),
    "left": _m("left", "剩余", "剩餘", "quedan"),
    "visits": _m("Visits", "就诊", "就診", "Visitas"),
    "appointments": _m("Appointments", "预约", "預約", "Citas"),
    "follow_ups": _m("Follow-ups", "回访", "回訪", "Seguimientos"),
    "open_follow_ups": _m("Open follow-ups", "待办回访", "待辦回訪", "Seguimientos abiertos"),
    "health_record": _m("Health record", "健康档案", "健康檔案", "Historia clínica"),
    "overview": _m("Overview", "概览", "概覽", "Resumen"),
    "none": _m("None.", "无。", "無。", "Ninguno."),
    "date": _m("Date", "日期", "日期", "Fecha"),
    "kind": _m("Kind", "类型", "類型", "Tipo"),
    "amount": _m("Amount", "金额", "金額", "Importe"),
    "queue": _m("Queue", "队列", "佇列", "Cola"),
    "due_on": _m("Due", "到期", "到期", "Vence"),
    "overdue": _m("overdue", "已逾期", "已逾期", "vencido"),
    "desk": _m("At the desk", "前台操作", "前台操作", "En recepción"),
    "earn_for_bill": _m("Earn points for a bill", "按账单积分", "按帳單積分", "Sumar puntos por una factura"),
    "bill_id": _m("Bill number (HIS)", "账单号（HIS）", "帳單號（HIS）", "Número de factura (HIS)"),
    "bill_amount": _m("Amount paid (CNY)", "实付金额（元）", "實付金額（元）", "Importe pagado (CNY)"),
    "category": _m("Treatment", "项目", "項目", "Tratamiento"),
    "redeem": _m("Redeem a reward", "兑换礼品", "兌換禮品", "Canjear una recompensa"),
    "reward": _m("Reward", "礼品", "禮品", "Recompensa"),
    "quantity": _m("Quantity", "数量", "數量", "Cantidad"),
    "top_up": _m("Top up stored value", "储值充值", "儲值充值", "Recargar saldo"),
    "use_benefit": _m("Use a benefit", "使用权益", "使用權益", "Usar un beneficio"),
    "benefit": _m("Benefit", "权益", "權益", "Beneficio"),
    "visit_ref": _m("Visit (id or bill number)", "就诊（编号或账单号）", "就診（編號或帳單號）",
                    "Visita (id o número de factura)"),
    "confirm": _m("Confirm", "确认", "確認", "Confirmar"),
    "cancel": _m("Cancel", "取消", "取消", "Cancelar"),
    "review": _m("Review", "核对", "核對", "Revisar"),
    "confirm_prompt": _m("Check the details, then confirm. It is done once, however often you press.",
                         "请核对后确认。无论按几次，只执行一次。", "請核對後確認。無論按幾次，只執行一次。",
                         "Revise los datos y confirme. Se hace una sola vez, aunque pulse varias."),
    "done_earn": _m("Bill {bill} recorded: its points follow in a moment.", "账单 {bill} 已记录，积分稍后到账。",
                    "帳單 {bill} 已記錄，積分稍後到帳。", "Factura {bill} registrada: sus puntos llegan en un momento."),
    "done_redeem": _m("Redeemed: {points} points.", "已兑换：{points} 积分。", "已兌換：{points} 積分。",
                      "Canjeado: {points} puntos."),
    "done_top_up": _m("Topped up.", "充值成功。", "儲值成功。", "Recarga hecha."),
    "done_benefit": _m("Benefit used.", "权益已使用。", "權益已使用。", "Beneficio usado."),
    "follow_up_queue": _m("Follow-up queue", "回访队列", "回訪佇列", "Cola de seguimientos"),
    "outcome": _m("Outcome", "结果", "結果", "Resultado"),
    "notes": _m("Notes", "备注", "備註", "Notas"),
    "record_outcome": _m("Record the outcome", "记录结果", "記錄結果", "Registrar el resultado"),
    "next_appointment": _m("Next appointment (id)", "下次预约（编号）", "下次預約（編號）", "Próxima cita (id)"),
    "retry_on": _m("Call again on", "再次联系日期", "再次聯絡日期", "Volver a llamar el"),
    "next_page": _m("Next page", "下一页", "下一頁", "Página siguiente"),
    "kpis": _m("KPI dashboard", "指标看板", "指標看板", "Panel de KPI"),
    "period": _m("Period", "周期", "週期", "Periodo"),
    "day": _m("Day", "日", "日", "Día"),
    "week": _m("Week", "周", "週", "Semana"),
    "month": _m("Month", "月", "月", "Mes"),
    "year": _m("Year", "年", "年", "Año"),
    "on_day": _m("On", "日期", "日期", "Fecha"),
    "show": _m("Show", "显示", "顯示", "Mostrar"),
    "figure": _m("Figure", "指标", "指標", "Indicador"),
    "value": _m("Value", "数值", "數值", "Valor"),
    "target": _m("Target", "目标", "目標", "Objetivo"),
    "met": _m("met", "达标", "達標", "cumplido"),
    "missed": _m("missed", "未达标", "未達標", "no cumplido"),
    "total": _m("Group", "集团", "集團", "Grupo"),
    "kpi.first_visit_arrivals": _m("First-visit arrivals", "初诊到诊", "初診到診", "Primeras visitas"),
    "kpi.return_visit_arrivals": _m("Return-visit arrivals", "复诊到诊", "複診到診", "Visitas de retorno"),
    "kpi.first_visit_conversion_bp": _m("First-visit conversion", "初诊成交率", "初診成交率",
                                        "Conversión de primeras visitas"),
    "kpi.referral_share_bp": _m("Referral share of first visits", "转介绍占比", "轉介紹佔比",
                                "Parte de primeras visitas referidas"),
    "kpi.nps": _m("NPS", "净推荐值", "淨推薦值", "NPS"),
    "kpi.complaint_rate_bp": _m("Complaint rate", "投诉率", "投訴率", "Tasa de quejas"),
    "kpi.urgent_response_average_seconds": _m("Urgent response time", "紧急响应时间", "緊急回應時間",
                                              "Tiempo de respuesta urgente"),
    "kpi.completed_visits": _m("Completed visits", "完成就诊", "完成就診", "Visitas completadas"),
    "kpi.revenue_minor": _m("Revenue", "收入", "收入", "Ingresos"),
    "kpi.average_ticket_minor": _m("Average ticket", "客单价", "客單價", "Ticket medio"),
    "kpi.satisfied_share_bp": _m("Satisfied", "满意率", "滿意率", "Satisfechos"),
    "health_profile": _m("Health profile", "健康资料", "健康資料", "Perfil de salud"),
    "allergies": _m("Allergies", "过敏", "過敏", "Alergias"),
    "medications": _m("Medication", "用药", "用藥", "Medicación"),
    "conditions": _m("Conditions", "疾病", "疾病", "Enfermedades"),
    "access_audited": _m("Every opening of this record is audited.", "每次查看本档案都会被审计。",
                         "每次查看本檔案都會被稽核。", "Cada apertura de esta historia queda auditada."),
    "error": _m("Something went wrong", "出错了", "出錯了", "Algo salió mal"),
    "forbidden": _m("You may not open this page.", "您无权打开此页面。", "您無權開啟此頁面。",
                    "No puede abrir esta página."),
    "not_found": _m("Not found.", "未找到。", "未找到。", "No encontrado."),
    "csrf_failed": _m("This form has expired or did not come from this console; reload the page and try again.",
                      "表单已过期或并非来自本控制台；请刷新页面后重试。", "表單已過期或並非來自本控制台；請重新整理頁面後重試。",
                      "El formulario caducó o no viene de esta consola; recargue la página e inténtelo de nuevo."),
    "unavailable": _m("A CareLoop service did not answer; wait a moment and try again.",
                      "CareLoop 服务暂时没有响应，请稍后重试。", "CareLoop 服務暫時沒有回應，請稍後重試。",
                      "Un servicio de CareLoop no respondió; espere un momento y vuelva a intentarlo."),
    "wrong_credentials": _m("The user name or password is wrong.", "用户名或密码错误。", "使用者名稱或密碼錯誤。",
                            "Usuario o contraseña incorrectos."),
    "password_change_required": _m("Choose a new password first (POST /v1/auth/password), then sign in here.",
                                   "请先修改密码（POST /v1/auth/password），再在此登录。",
                                   "請先修改密碼（POST /v1/auth/password），再在此登入。",
                                   "Elija primero una contraseña nueva (POST /v1/auth/password) y vuelva a entrar."),
    "fix_fields": _m("Please correct: {fields}", "请更正：{fields}", "請更正：{fields}", "Corrija: {fields}"),
    "back": _m("Back", "返回", "返回", "Volver"),
    "enrol": _m("Enrol a member", "新会员登记", "新會員登記", "Dar de alta"),
    "sms_consent": _m("Agrees to SMS", "同意接收短信", "同意接收簡訊", "Acepta SMS"),
    "referral_code": _m("Referral code (optional)", "推荐码（可选）", "推薦碼（選填）", "Código de referido (opcional)"),
    "duplicate": _m("Already a member? {message}", "可能已是会员：{message}", "可能已是會員：{message}",
                    "¿Ya es socio? {message}"),
    "open_match": _m("Open the matching member", "打开匹配的会员", "開啟相符的會員", "Abrir el socio coincidente"),
    # the member page (/m/): members themselves, on their phones
    "m.app": _m("My membership", "我的会员", "我的會員", "Mi membresía"),
    "m.sign_in_hint": _m("Enter your mobile number: we will send you a one-time code by SMS.",
                         "请输入手机号，我们会通过短信发送一次性验证码。", "請輸入手機號碼，我們會以簡訊傳送一次性驗證碼。",
                         "Escriba su número de móvil: le enviaremos un código de un solo uso por SMS."),
    "m.send_code": _m("Send me a code", "发送验证码", "傳送驗證碼", "Enviarme un código"),
    "m.phone_invalid": _m("This is not a mobile number we can read; check it and try again.",
                          "无法识别该手机号，请检查后重试。", "無法識別此手機號碼，請檢查後再試。",
                          "No reconocemos este número de móvil; revíselo e inténtelo de nuevo."),
    "m.enter_code": _m("Enter your code", "输入验证码", "輸入驗證碼", "Escriba su código"),
    "m.code_sent": _m("If this number belongs to a member, a code is on its way by SMS. It works once, for {minutes} minutes.",
                      "如果该号码属于会员，验证码已通过短信发送，{minutes} 分钟内有效，仅可使用一次。",
                      "若此號碼屬於會員，驗證碼已以簡訊傳送，{minutes} 分鐘內有效，僅可使用一次。",
                      "Si este número es de un socio, le llega un código por SMS. Sirve una vez, durante {minutes} minutos."),
    "m.code": _m("Code", "验证码", "驗證碼", "Código"),
    "m.ask_again": _m("No code? Ask for a new one", "没收到？重新获取验证码", "沒收到？重新取得驗證碼",
                      "¿Sin código? Pida uno nuevo"),
    "m.code_wrong": _m("That code is not right; check the SMS and try again.", "验证码不正确，请核对短信后重试。",
                       "驗證碼不正確，請核對簡訊後再試。", "El código no es correcto; revise el SMS e inténtelo de nuevo."),
    "m.code_expired": _m("This code no longer works (used, or older than {minutes} minutes); ask for a new one.",
                         "该验证码已失效（已使用或超过 {minutes} 分钟），请重新获取。", "此驗證碼已失效（已使用或超過 {minutes} 分鐘），請重新取得。",
                         "Este código ya no sirve (usado o de hace más de {minutes} minutos); pida uno nuevo."),
    "m.code_locked": _m("Too many wrong codes: signing in is paused for 1{minutes} minutes. Try again later.",
                        "错误次数过多，登录已暂停 1{minutes} 分钟，请稍后再试。", "錯誤次數過多，登入已暫停 1{minutes} 分鐘，請稍後再試。",
                        "Demasiados códigos erróneos: el acceso queda en pausa 1{minutes} minutos. Inténtelo más tarde."),
    "m.too_many": _m("Too many attempts from here or for this number; wait a few minutes and try again.",
                     "请求过于频繁，请等几分钟后再试。", "請求過於頻繁，請等幾分鐘後再試。",
                     "Demasiados intentos desde aquí o para este número; espere unos minutos y vuelva a intentarlo."),
    "m.signed_out": _m("You are signed out; sign in again.", "您已退出，请重新登录。", "您已登出，請重新登入。",
                       "Ha cerrado la sesión; vuelva a entrar."),
    "m.csrf_failed": _m("This page has expired; go back, reload it and try again.", "页面已过期，请返回并刷新后重试。",
                        "頁面已過期，請返回並重新整理後再試。", "La página caducó; vuelva, recárguela e inténtelo de nuevo."),
    "m.check_and_retry": _m("That did not work; check and try again.", "操作未成功，请检查后重试。",
                            "操作未成功，請檢查後再試。", "No se pudo; revíselo e inténtelo de nuevo."),
    "m.any_path": _m("any one of these gets you there", "满足以下任一条件即可", "滿足以下任一條件即可",
                     "basta con cualquiera de estos"),
    "m.expiring": _m("What expires when", "积分到期时间", "積分到期時間", "Qué caduca y cuándo"),
    "m.valid_until": _m("valid until {date}", "有效期至 {date}", "有效期至 {date}", "válido hasta el {date}"),
    "m.upcoming": _m("Upcoming appointments", "即将到来的预约", "即將到來的預約", "Próximas citas"),
    "m.contact": _m("How we contact you", "联系方式偏好", "聯絡方式偏好", "Cómo le contactamos"),
    "m.by_sms": _m("Messages by SMS", "短信通知", "簡訊通知", "Mensajes por SMS"),
    "m.by_email": _m("Messages by e-mail", "邮件通知", "電子郵件通知", "Mensajes por correo"),
    "m.offers": _m("Offers and news", "优惠与资讯", "優惠與資訊", "Ofertas y novedades"),
    "m.do_not_contact": _m("No reminders or offers at all (appointment messages still come)",
                           "不接收任何提醒或优惠（预约消息仍会发送）", "不接收任何提醒或優惠（預約訊息仍會傳送）",
                           "Ningún recordatorio ni oferta (los mensajes de sus citas siguen llegando)"),
    "m.save": _m("Save", "保存", "儲存", "Guardar"),
    "m.saved": _m("Saved.", "已保存。", "已儲存。", "Guardado."),
    # programme settings (group admins)
    "settings": _m("Programme settings", "会员方案设置", "會員方案設定", "Ajustes del programa"),
    "programme_settings": _m("Programme settings", "会员方案设置", "會員方案設定", "Ajustes del programa"),
    "version_in_force": _m("Version {version} in force", "当前生效版本 {version}", "目前生效版本 {version}",
                           "Versión {version} en vigor"),
    "programme_saved": _m("Version {version} is now in force.", "版本 {version} 已生效。", "版本 {version} 已生效。",
                          "La versión {version} ya está en vigor."),
    "tier_thresholds": _m("Tier thresholds", "等级门槛", "等級門檻", "Umbrales de nivel"),
    "threshold_hint": _m("Any one path qualifies, counted over the last 12 months. Money in {currency}; leave a box "
                         "empty when the path does not apply.",
                         "满足任一条件即可，按近 12 个月计算。金额单位 {currency}；不适用的条件请留空。",
                         "滿足任一條件即可，按近 12 個月計算。金額單位 {currency}；不適用的條件請留空。",
                         "Basta con cumplir una vía, contada en los últimos 12 meses. Importes en {currency}; deje "
                         "vacía la casilla si la vía no se aplica."),
    "threshold.spend_minor": _m("Spend in 12 months", "12 个月消费", "12 個月消費", "Gasto en 12 meses"),
    "threshold.single_top_up_minor": _m("One single top-up", "单笔储值", "單筆儲值", "Una sola recarga"),
    "threshold.points_12m": _m("Points earned in 12 months", "12 个月所得积分", "12 個月所得積分",
                               "Puntos ganados en 12 meses"),
    "threshold.visits_12m": _m("Visits in 12 months", "12 个月到诊次数", "12 個月到診次數", "Visitas en 12 meses"),
    "entry_tier": _m("Every member starts here.", "所有会员从此等级开始。", "所有會員從此等級開始。",
                     "Todos los socios empiezan aquí."),
    "change_note": _m("Why (kept with the version)", "修改原因（随版本保存）", "修改原因（隨版本保存）",
                      "Motivo (se guarda con la versión)"),
    "preview_effect": _m("Preview the effect", "预览影响", "預覽影響", "Ver el efecto"),
    "preview": _m("Preview", "预览", "預覽", "Vista previa"),
    "preview_moves": _m("This change moves {up} members up and {down} down.", "此修改将使 {up} 位会员升级，{down} 位降级。",
                        "此修改將使 {up} 位會員升級，{down} 位降級。",
                        "Este cambio sube a {up} socios y baja a {down}."),
    "preview_of": _m("Of {members} active members, judged on their 12 months to {day}.",
                     "共 {members} 位有效会员，按截至 {day} 的 12 个月计算。",
                     "共 {members} 位有效會員，按截至 {day} 的 12 個月計算。",
                     "De {members} socios activos, según sus 12 meses hasta el {day}."),
    "preview_when": _m("Up: at their next visit, points or top-up. Down: at their yearly review, after a notice, one "
                       "step at most.", "升级：在下次到诊、积分或储值时。降级：在年度复核时，先通知，最多降一级。",
                       "升級：在下次到診、積分或儲值時。降級：在年度複核時，先通知，最多降一級。",
                       "Suben: en su próxima visita, puntos o recarga. Bajan: en su revisión anual, tras un aviso, "
                       "como mucho un nivel."),
    "preview_already_short": _m("{members} members are short of their tier under the rules in force already.",
                                "另有 {members} 位会员在现行规则下已未达到其等级。",
                                "另有 {members} 位會員在現行規則下已未達到其等級。",
                                "{members} socios ya no alcanzan su nivel con las reglas en vigor."),
    "from_tier": _m("From", "原等级", "原等級", "De"),
    "to_tier": _m("To", "新等级", "新等級", "A"),
    "members_count": _m("Members", "会员数", "會員數", "Socios"),
    "put_in_force": _m("Put this version in force", "使此版本生效", "使此版本生效", "Poner esta versión en vigor"),
    "fix_marked": _m("Check the marked boxes.", "请检查标出的输入框。", "請檢查標出的輸入框。",
                     "Revise las casillas marcadas."),
    "not_a_number": _m("Type a number.", "请输入数字。", "請輸入數字。", "Escriba un número."),
    "not_negative": _m("Not below zero.", "不能小于零。", "不能小於零。", "No puede ser negativo."),
    "money_two_decimals": _m("An amount with at most two decimals.", "金额最多两位小数。", "金額最多兩位小數。",
                             "Un importe con dos decimales como máximo."),
    "whole_number": _m("A whole number.", "请输入整数。", "請輸入整數。", "Un número entero."),
    "earning_rules": _m("Earning rules and campaigns", "积分规则与活动", "積分規則與活動", "Reglas de puntos y campañas"),
    "earning_read_only": _m("In force now; set in the points programme file (read-only here).",
                            "当前生效；在积分方案文件中设置（此处只读）。", "目前生效；在積分方案檔案中設定（此處唯讀）。",
                            "En vigor; se definen en el archivo del programa de puntos (aquí solo lectura)."),
    "rule_spend": _m("Spend", "消费", "消費", "Gasto"),
    "rule_spend_value": _m("{points} points per {amount} paid", "每支付 {amount} 得 {points} 积分",
                           "每支付 {amount} 得 {points} 積分", "{points} puntos por cada {amount} pagado"),
    "rule_visit": _m("Points per visit", "每次到诊积分", "每次到診積分", "Puntos por visita"),
    "rule_tier_multipliers": _m("Tier multipliers", "等级倍数", "等級倍數", "Multiplicadores por nivel"),
    "campaigns": _m("Campaigns", "活动", "活動", "Campañas"),
    "campaign_dates": _m("Dates", "日期", "日期", "Fechas"),
    "campaign_multiplier": _m("Multiplier", "倍数", "倍數", "Multiplicador"),
    "campaign_bonus": _m("Bonus points", "奖励积分", "獎勵積分", "Puntos extra"),
    "care_journeys": _m("Care journeys", "关怀旅程", "關懷旅程", "Recorridos de cuidado"),
    "journeys_read_only": _m("Composed through the API (/v1/journeys); not editable on this page yet.",
                             "通过接口（/v1/journeys）编排；暂不能在此页修改。", "透過介面（/v1/journeys）編排；暫不能在此頁修改。",
                             "Se componen con la API (/v1/journeys); aún no se editan en esta página."),
    # imports (gateway/console/imports.py)
    "imports": _m("Imports", "导入", "匯入", "Importaciones"),
    "yes": _m("Yes", "是", "是", "Sí"),
    "no": _m("No", "否", "否", "No"),
    "import_kind": _m("The file holds", "文件内容", "檔案內容", "El archivo contiene"),
    "import_kind.members": _m("members", "会员", "會員", "socios"),
    "import_kind.points_openings": _m("points opening balances", "积分期初余额", "積分期初餘額",
                                      "saldos iniciales de puntos"),
    "import_kind.wallet_openings": _m("stored-value opening balances", "储值期初余额", "儲值期初餘額",
                                      "saldos iniciales de monedero"),
    "import_file": _m("File (.csv or .xlsx)", "文件（.csv 或 .xlsx）", "檔案（.csv 或 .xlsx）", "Archivo (.csv o .xlsx)"),
    "import_file_name": _m("File", "文件", "檔案", "Archivo"),
    "import_sheet": _m("Sheet (.xlsx; the first if empty)", "工作表（.xlsx；留空为第一个）", "工作表（.xlsx；留空為第一個）",
                       "Hoja (.xlsx; la primera si se deja vacío)"),
    "import_day_first": _m("Is 05/03/2024 the 5th of March?", "05/03/2024 是 3 月 5 日吗？", "05/03/2024 是 3 月 5 日嗎？",
                           "¿05/03/2024 es el 5 de marzo?"),
    "import_day_first_guess": _m("Work it out from the file", "根据文件判断", "根據檔案判斷", "Deducirlo del archivo"),
    "import_default_branch": _m("Branch of rows that name none", "未填门店的行归属门店", "未填門店的列歸屬門店",
                                "Sucursal de las filas que no la indican"),
    "import_upload": _m("Upload", "上传", "上傳", "Subir"),
    "import_choose_file": _m("Choose a .csv or .xlsx file to upload.", "请选择要上传的 .csv 或 .xlsx 文件。",
                             "請選擇要上傳的 .csv 或 .xlsx 檔案。", "Elija un archivo .csv o .xlsx para subir."),
    "import_jobs": _m("Imports so far", "导入记录", "匯入紀錄", "Importaciones realizadas"),
    "import_progress": _m("Progress", "进度", "進度", "Progreso"),
    "import_created": _m("Created", "创建时间", "建立時間", "Creada"),
    "import_rows": _m("{done} of {total} rows", "{total} 行中已处理 {done} 行", "{total} 列中已處理 {done} 列",
                      "{done} de {total} filas"),
    "import_rate": _m("· {rate} rows a second, about {seconds} s left", "· 每秒 {rate} 行，约剩 {seconds} 秒",
                      "· 每秒 {rate} 列，約剩 {seconds} 秒", "· {rate} filas por segundo, quedan unos {seconds} s"),
    "import_check": _m("Check every row (nothing is imported yet)", "逐行检查（暂不导入）", "逐列檢查（暫不匯入）",
                       "Revisar cada fila (aún no se importa nada)"),
    "import_commit": _m("Import the {count} rows that passed", "导入通过检查的 {count} 行", "匯入通過檢查的 {count} 列",
                        "Importar las {count} filas correctas"),
    "import_cancel": _m("Stop this import", "停止本次导入", "停止本次匯入", "Detener esta importación"),
    "import_report": _m("Download the row-by-row report (CSV)", "下载逐行报告（CSV）", "下載逐列報告（CSV）",
                        "Descargar el informe fila por fila (CSV)"),
    "import_commit_report": _m("Download the import's report (CSV)", "下载导入报告（CSV）", "下載匯入報告（CSV）",
                               "Descargar el informe de la importación (CSV)"),
    "import_count.valid": _m("Rows that passed", "通过的行", "通過的列", "Filas correctas"),
    "import_count.invalid": _m("Rows with a problem", "有问题的行", "有問題的列", "Filas con problemas"),
    "import_count.present": _m("Already members", "已是会员", "已是會員", "Ya son socios"),
    "import_count.repeated": _m("Repeated in the file", "文件内重复", "檔案內重複", "Repetidas en el archivo"),
    "import_count.imported": _m("Imported", "已导入", "已匯入", "Importadas"),
    "import_state.uploaded": _m("uploaded", "已上传", "已上傳", "subida"),
    "import_state.validating": _m("checking", "检查中", "檢查中", "revisando"),
    "import_state.validated": _m("checked", "已检查", "已檢查", "revisada"),
    "import_state.importing": _m("importing", "导入中", "匯入中", "importando"),
    "import_state.done": _m("done", "已完成", "已完成", "terminada"),
    "import_state.failed": _m("failed", "失败", "失敗", "fallida"),
    "import_state.cancelled": _m("stopped", "已停止", "已停止", "detenida"),
    # the earning rules page (gateway/console/earning.py)
    "earning_title": _m("Points earning rules", "积分获取规则", "積分獲取規則", "Reglas para ganar puntos"),
    "earning_hint": _m("The programme file's rules, with what is saved here over them. A change applies to "
                       "everything earned after it is saved.",
                       "方案文件中的规则，以此处保存的为准。修改后，之后获得的积分都按新规则计算。",
                       "方案檔案中的規則，以此處儲存的為準。修改後，之後獲得的積分都按新規則計算。",
                       "Las reglas del archivo del programa, con lo guardado aquí por encima. Un cambio se aplica "
                       "a todo lo ganado después de guardarlo."),
    "earning_changed_by": _m("changed by {who} at {when}", "由 {who} 于 {when} 修改", "由 {who} 於 {when} 修改",
                             "cambiadas por {who} el {when}"),
    "earning_saved": _m("Version {version} saved: bills from now on earn by it.",
                        "已保存版本 {version}：此后的账单按它积分。", "已儲存版本 {version}：此後的帳單按它積分。",
                        "Versión {version} guardada: las facturas desde ahora ganan según ella."),
    "earning_spend_points": _m("Points per {amount} paid", "每支付 {amount} 的积分", "每支付 {amount} 的積分",
                               "Puntos por cada {amount} pagado"),
    "earning_multiplier_hint": _m("A multiplier such as 1.5 (at least 1); a tier without a box earns 1×.",
                                  "倍数如 1.5（至少为 1）；没有输入框的等级按 1 倍。",
                                  "倍數如 1.5（至少為 1）；沒有輸入框的等級按 1 倍。",
                                  "Un multiplicador como 1,5 escrito 1.5 (al menos 1); un nivel sin casilla gana 1×."),
    "earning_visits_and_activities": _m("Visits and activities", "到诊与活动", "到診與活動", "Visitas y actividades"),
    "earning_visit_kinds": _m("Visit kinds that earn visit points", "获得到诊积分的就诊类型",
                              "獲得到診積分的就診類型", "Tipos de visita que ganan puntos por visita"),
    "earning_activity_points": _m("Points per activity", "每次活动积分", "每次活動積分", "Puntos por actividad"),
    "earning_activity_kinds": _m("Activity kinds that earn", "获得积分的活动类型", "獲得積分的活動類型",
                                 "Tipos de actividad que ganan puntos"),
    "earning_referrals": _m("Referrals", "推荐", "推薦", "Recomendaciones"),
    "earning_referral_enrolment": _m("To the referrer when the referred person enrols", "被推荐人入会时给推荐人",
                                     "被推薦人入會時給推薦人", "Al recomendante cuando el recomendado se inscribe"),
    "earning_referral_first_visit": _m("To the referrer on their first paid visit", "被推荐人首次付费到诊时给推荐人",
                                       "被推薦人首次付費到診時給推薦人",
                                       "Al recomendante en su primera visita pagada"),
    "earning_review_points": _m("Points per survey answer", "每次问卷积分", "每次問卷積分",
                                "Puntos por respuesta a la encuesta"),
    "earning_review_hint": _m("By satisfaction; a negative number deducts points.", "按满意度；负数为扣分。",
                              "按滿意度；負數為扣分。", "Según la satisfacción; un número negativo resta puntos."),
    "earning_interaction_points": _m("Online interactions", "线上互动", "線上互動", "Interacciones en línea"),
    "earning_interaction_cap": _m("At most this many interaction points per member per day",
                                  "每位会员每天最多互动积分", "每位會員每天最多互動積分",
                                  "Máximo de puntos por interacciones por socio y día"),
    "earning_save": _m("Save the earning rules", "保存积分规则", "儲存積分規則", "Guardar las reglas"),
    "earning_satisfaction.very_satisfied": _m("Very satisfied", "非常满意", "非常滿意", "Muy satisfecho"),
    "earning_satisfaction.satisfied": _m("Satisfied", "满意", "滿意", "Satisfecho"),
    "earning_satisfaction.neutral": _m("Neutral", "一般", "一般", "Neutral"),
    "earning_satisfaction.dissatisfied": _m("Dissatisfied", "不满意", "不滿意", "Insatisfecho"),
    "earning_satisfaction.very_dissatisfied": _m("Very dissatisfied", "非常不满意", "非常不滿意", "Muy insatisfecho"),
}


WORDS: dict[str, M] = {
    # members' statuses
    "active": _m("active", "正常", "正常", "activo"), "frozen": _m("frozen", "冻结", "凍結", "congelado"),
    "closed": _m("closed", "已注销", "已註銷", "cerrado"), "merged": _m("merged", "已合并", "已合併", "fusionado"),
    # visit kinds and statuses, appointment statuses
    "first": _m("first visit", "初诊", "初診", "primera visita"), "return": _m("return visit", "复诊", "複診", "revisión"),
    "emergency": _m("emergency", "急诊", "急診", "urgencia"), "free_clinic": _m("free clinic", "义诊", "義診", "consulta gratuita"),
    "event": _m("event", "活动", "活動", "evento"), "booked": _m("booked", "已预约", "已預約", "reservada"),
    "arrived": _m("arrived", "已到诊", "已到診", "llegó"), "in_treatment": _m("in treatment", "治疗中", "治療中", "en tratamiento"),
    "completed": _m("completed", "已完成", "已完成", "completada"), "cancelled": _m("cancelled", "已取消", "已取消", "cancelada"),
    "no_show": _m("no-show", "爽约", "爽約", "no se presentó"), "checked_in": _m("checked in", "已签到", "已簽到", "registrada"),
    # bill items
    "exam": _m("exam", "检查", "檢查", "revisión"), "treatment": _m("treatment", "治疗", "治療", "tratamiento"),
    "cleaning": _m("cleaning", "洁牙", "潔牙", "limpieza"), "implant": _m("implant", "种植", "植牙", "implante"),
    "orthodontics": _m("orthodontics", "正畸", "矯正", "ortodoncia"), "whitening": _m("whitening", "美白", "美白", "blanqueamiento"),
    "products": _m("products", "商品", "商品", "productos"), "surgery": _m("surgery", "手术", "手術", "cirugía"),
    "imaging": _m("imaging", "影像", "影像", "imagen"), "other": _m("other", "其他", "其他", "otro"),
    # follow-up queues, states and outcomes
    "customer_service": _m("customer service", "客服", "客服", "atención al cliente"),
    "consultant": _m("consultant", "咨询师", "諮詢師", "asesor"), "clinician": _m("clinician", "医生", "醫師", "clínico"),
    "never_came": _m("never came", "未到诊", "未到診", "nunca vino"), "not_treated": _m("not treated", "未成交", "未成交", "sin tratar"),
    "interrupted": _m("treatment interrupted", "治疗中断", "治療中斷", "tratamiento interrumpido"),
    "outpatient_surgery": _m("outpatient surgery", "门诊手术", "門診手術", "cirugía ambulatoria"),
    "treatment_finished": _m("treatment finished", "治疗完成", "治療完成", "tratamiento terminado"),
    "event_attendee": _m("event attendee", "活动参与者", "活動參與者", "asistente a evento"),
    "journey": _m("care journey task", "关怀旅程任务", "關懷旅程任務", "tarea de un recorrido de cuidado"),
    "reached": _m("reached", "已联系", "已聯絡", "contactado"),
    "appointment_booked": _m("appointment booked", "已预约", "已預約", "cita reservada"),
    "no_answer": _m("no answer", "无人接听", "無人接聽", "no contesta"),
    "call_back_later": _m("call back later", "稍后回电", "稍後回電", "volver a llamar"),
    "declined": _m("declined", "拒绝", "拒絕", "rechazó"), "wrong_number": _m("wrong number", "号码错误", "號碼錯誤", "número equivocado"),
    "do_not_contact": _m("do not contact", "勿再联系", "勿再聯絡", "no contactar"),
    "open": _m("open", "待办", "待辦", "abierta"), "done": _m("done", "已完成", "已完成", "hecha"),
    # the tier programme's qualifying paths and the default ladder (a programme's own names win)
    "spend": _m("spend", "消费", "消費", "gasto"), "top_up": _m("top-ups", "储值", "儲值", "recargas"),
    "points": _m("points", "积分", "積分", "puntos"), "visits": _m("visits", "到诊次数", "到診次數", "visitas"),
    "standard": _m("standard", "普通", "普通", "estándar"), "silver": _m("silver", "银卡", "銀卡", "plata"),
    "gold": _m("gold", "金卡", "金卡", "oro"), "diamond": _m("diamond", "钻石", "鑽石", "diamante"),
    "source_database": _m("stored by a group admin", "由集团管理员保存", "由集團管理員儲存", "guardada por un administrador"),
    "source_file": _m("the group's file", "集团配置文件", "集團設定檔", "el archivo del grupo"),
    "source_defaults": _m("the shipped defaults", "出厂默认", "出廠預設", "los valores de fábrica"),
}
"""The services' vocabularies as people read them (``Translator.word``); a code not here is shown as it is."""


class Translator:
    """The words, dates and money of one language."""

    def __init__(self, language: str, currency: str = "CNY", zone: Any = None) -> None:
        self.language = language if language in LANGUAGES else "en"
        self.locale = Locale.parse(BABEL_LOCALES[self.language])
        self.currency = currency
        self.zone = zone

    def __call__(self, message_id: str, **values: Any) -> str:
        text = MESSAGES[message_id][self.language]
        return text.format(**values) if values else text

    def word(self, code: str | None) -> str:
        """A vocabulary code of a service (a status, a queue, an outcome...) in this language."""
        if code is None:
            return "—"
        return WORDS[code][self.language] if code in WORDS else code

    def tier(self, code: str | None, names: dict[str, str] | None = None) -> str:
        """A tier's name: the programme's own if it names it otherwise than its code, else the ladder's words."""
        named = (names or {}).get(code or "")
        return named if named and named != code else self.word(code)

    def money(self, amount_minor: int | None, currency: str | None = None) -> str:
        if amount_minor is None:
            return "—"
        return format_currency(Decimal(int(amount_minor)).scaleb(-2), currency or self.currency, locale=self.locale)

    def number(self, value: int | None) -> str:
        return "—" if value is None else format_decimal(value, locale=self.locale)

    def basis_points(self, value: int | None) -> str:
        return "—" if value is None else format_percent(Decimal(int(value)).scaleb(-4), "#,##0.0%",
                                                        locale=self.locale)

    def date(self, value: str | date | None) -> str:
        if not value:
            return "—"
        return format_date(date.fromisoformat(value) if isinstance(value, str) else value, "medium",
                           locale=self.locale)

    def moment(self, value: str | datetime | None) -> str:
        if not value:
            return "—"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(moment, "short", tzinfo=self.zone, locale=self.locale)


def choose_language(cookie: str | None, accept_language: Any) -> str:
    """The remembered choice, else the browser's first language we have, else English."""
    if cookie in LANGUAGES:
        return cookie
    for offered, _quality in accept_language or ():
        tag = str(offered).lower()
        if tag.startswith("zh"):
            return "zh-Hant" if any(x in tag for x in ("hant", "tw", "hk", "mo")) else "zh-Hans"
        for language in LANGUAGES:
            if tag.split("-")[0] == language:
                return language
    return "en"
