// Chinese labels, mirroring hub/workflow.py (LABELS_ZH, NOTE_REQUIRED, PHOTO_REQUIRED, ACTION_ROLES).
// Keep in step with the Python side; the server's *_label fields win where they are present.

/** Case states in workflow order. */
export const STATES = [
  "reported",
  "confirming",
  "quick_handling",
  "registered",
  "dispatched",
  "returned",
  "handling",
  "deferred",
  "feedback",
  "verifying",
  "verified",
  "closed",
  "rejected",
  "voided",
];

export const STATE_LABELS = {
  reported: "待受理",
  confirming: "核实中",
  quick_handling: "快速处置中",
  registered: "待派遣",
  dispatched: "待签收",
  returned: "已回退",
  handling: "处置中",
  deferred: "缓办",
  feedback: "待核查",
  verifying: "核查中",
  verified: "待结案",
  closed: "已结案",
  rejected: "不予立案",
  voided: "已作废",
};

export const OPEN_STATES = new Set(STATES.slice(0, 11));

export const ACTION_LABELS = {
  report: "上报",
  quick_report: "快速处置上报",
  register: "立案",
  reject: "不予立案",
  request_confirm: "发送核实",
  confirm_pass: "核实属实",
  confirm_fail: "核实不属实",
  dispatch: "派遣",
  accept: "签收",
  return: "回退",
  request_extension: "申请延期",
  approve_extension: "批准延期",
  deny_extension: "驳回延期",
  defer: "缓办",
  resume: "恢复办理",
  feedback: "处置反馈",
  quick_complete: "快速处置完成",
  request_verify: "发送核查",
  verify_pass: "核查通过",
  verify_fail: "核查不通过(返工)",
  rework: "返工",
  close: "结案",
  escalate: "督办",
  void: "作废",
  add_evidence: "补充证据",
};

export const ROLE_LABELS = {
  admin: "系统管理员",
  seat: "监督中心坐席",
  dispatcher: "指挥中心派遣员",
  department: "专业部门",
  supervisor: "监督员",
  agent: "热线坐席",
  viewer: "只读用户",
};

export const SOURCES = ["supervisor", "hotline", "video", "sensor", "public"];

export const SOURCE_LABELS = {
  supervisor: "监督员上报",
  hotline: "12319热线",
  video: "视频巡查",
  sensor: "传感器",
  public: "公众",
};

export const REJECT_REASON_LABELS = {
  invalid: "无效",
  duplicate: "重复",
};

export const KIND_LABELS = {
  event: "事件",
  component: "部件",
};

/** Actions that must carry a note (workflow.NOTE_REQUIRED). */
export const NOTE_REQUIRED = new Set([
  "reject",
  "return",
  "request_extension",
  "deny_extension",
  "defer",
  "confirm_fail",
  "verify_fail",
  "rework",
  "escalate",
  "void",
]);

/** Actions that must carry at least one photo (workflow.PHOTO_REQUIRED). */
export const PHOTO_REQUIRED = new Set(["feedback", "quick_report", "quick_complete", "add_evidence"]);

/** Actions where photos are welcome but optional. */
export const PHOTO_OPTIONAL = new Set([
  "confirm_pass",
  "confirm_fail",
  "verify_pass",
  "verify_fail",
  "return",
  "reject",
]);

/** Actions shown as red (destructive) buttons. */
export const DANGEROUS_ACTIONS = new Set(["void", "reject", "return", "verify_fail", "rework"]);

/** Roles that may report a new case (workflow.ACTION_ROLES[REPORT]). */
export const REPORT_ROLES = new Set(["seat", "supervisor", "agent", "admin"]);

/** Which sources each role may report from (hub/service.py SOURCE_ROLES). */
export const SOURCES_BY_ROLE = {
  admin: SOURCES,
  seat: ["video", "public", "sensor", "hotline"],
  supervisor: ["supervisor"],
  agent: ["hotline"],
};

/** Sources whose reports must carry coordinates (hub/service.py LOCATED_SOURCES). */
export const LOCATED_SOURCES = new Set(["supervisor", "video"]);

/** Default source of a new report, by role. */
export const DEFAULT_SOURCE_BY_ROLE = {
  supervisor: "supervisor",
  agent: "hotline",
  seat: "video",
  admin: "supervisor",
};

export function stateLabel(state) {
  return STATE_LABELS[state] ?? state ?? "";
}

export function actionLabel(action) {
  return ACTION_LABELS[action] ?? action ?? "";
}

export function roleLabel(role) {
  return ROLE_LABELS[role] ?? role ?? "";
}

export function sourceLabel(source) {
  return SOURCE_LABELS[source] ?? source ?? "";
}
