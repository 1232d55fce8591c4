"""The MIMIC-IV 2.2 file layout the generator writes: headers (column order) and d_items rows.

Headers are the real ones of PhysioNet's MIMIC-IV Clinical Database Demo 2.2 (hosp/ and icu/
CSV.gz), in their order, including 2.2's upper-case ``ORIGINALAMOUNT``/``ORIGINALRATE`` in
procedureevents. chartevents is absent from the demo we hold; its header is the documented
MIMIC-IV 2.2 one (https://mimic.mit.edu/docs/iv/modules/icu/chartevents/).
``tests/test_synth.py`` checks every header against the demo files.

``D_ITEMS_ROWS`` are the demo's icu/d_items rows for every item id the generator writes
(label, abbreviation, linksto, category, unitname, param_type, low/high normal value).
"""

from __future__ import annotations

HEADERS: dict[str, tuple[str, ...]] = {
    "hosp/patients": ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    "hosp/admissions": (
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
        "admit_provider_id", "admission_location", "discharge_location", "insurance", "language",
        "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag",
    ),
    "hosp/diagnoses_icd": ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"),
    "hosp/labevents": (
        "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "order_provider_id",
        "charttime", "storetime", "value", "valuenum", "valueuom", "ref_range_lower",
        "ref_range_upper", "flag", "priority", "comments",
    ),
    "hosp/prescriptions": (
        "subject_id", "hadm_id", "pharmacy_id", "poe_id", "poe_seq", "order_provider_id",
        "starttime", "stoptime", "drug_type", "drug", "formulary_drug_cd", "gsn", "ndc",
        "prod_strength", "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
        "form_unit_disp", "doses_per_24_hrs", "route",
    ),
    "hosp/emar": (
        "subject_id", "hadm_id", "emar_id", "emar_seq", "poe_id", "pharmacy_id",
        "enter_provider_id", "charttime", "medication", "event_txt", "scheduletime", "storetime",
    ),
    "icu/icustays": (
        "subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime",
        "outtime", "los",
    ),
    "icu/inputevents": (
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "starttime", "endtime", "storetime",
        "itemid", "amount", "amountuom", "rate", "rateuom", "orderid", "linkorderid",
        "ordercategoryname", "secondaryordercategoryname", "ordercomponenttypedescription",
        "ordercategorydescription", "patientweight", "totalamount", "totalamountuom",
        "isopenbag", "continueinnextdept", "statusdescription", "originalamount", "originalrate",
    ),
    "icu/procedureevents": (
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "starttime", "endtime", "storetime",
        "itemid", "value", "valueuom", "location", "locationcategory", "orderid", "linkorderid",
        "ordercategoryname", "ordercategorydescription", "patientweight", "isopenbag",
        "continueinnextdept", "statusdescription", "ORIGINALAMOUNT", "ORIGINALRATE",
    ),
    "icu/chartevents": (
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
        "value", "valuenum", "valueuom", "warning",
    ),
    "icu/d_items": (
        "itemid", "label", "abbreviation", "linksto", "category", "unitname", "param_type",
        "lownormalvalue", "highnormalvalue",
    ),
}

# itemid -> (label, abbreviation, linksto, category, unitname, param_type, low, high); from the
# demo's icu/d_items.csv.gz. "" is an empty field.
D_ITEMS_ROWS: dict[int, tuple[str, str, str, str, str, str, str, str]] = {
    221906: ("Norepinephrine", "Norepinephrine", "inputevents", "Medications", "mg", "Solution", "", ""),
    222315: ("Vasopressin", "Vasopressin", "inputevents", "Medications", "units", "Solution", "", ""),
    221289: ("Epinephrine", "Epinephrine", "inputevents", "Medications", "mg", "Solution", "", ""),
    221749: ("Phenylephrine", "Phenylephrine", "inputevents", "Medications", "mg", "Solution", "", ""),
    229630: ("Phenylephrine (50/250)", "Phenylephrine (50/250)", "inputevents", "Medications", "mg", "Solution", "", ""),
    221662: ("Dopamine", "Dopamine", "inputevents", "Medications", "mg", "Solution", "", ""),
    225158: ("NaCl 0.9%", "NaCl 0.9%", "inputevents", "Fluids/Intake", "mL", "Solution", "", ""),
    225828: ("LR", "LR", "inputevents", "Fluids/Intake", "mL", "Solution", "", ""),
    225802: ("Dialysis - CRRT", "Dialysis - CRRT", "procedureevents", "Dialysis", "None", "Processes", "", ""),
    225441: ("Hemodialysis", "Hemodialysis", "procedureevents", "4-Procedures", "None", "Processes", "", ""),
    225752: ("Arterial Line", "Arterial Line", "procedureevents", "Access Lines - Invasive", "None", "Processes", "", ""),
    220052: ("Arterial Blood Pressure mean", "ABPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", "", ""),
    220181: ("Non Invasive Blood Pressure mean", "NBPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", "", ""),
    225312: ("ART BP Mean", "ART BP Mean", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", "", ""),
    226512: ("Admission Weight (Kg)", "Admission Weight (Kg)", "chartevents", "General", "kg", "Numeric", "", ""),
    224639: ("Daily Weight", "Daily Weight", "chartevents", "General", "kg", "Numeric", "", ""),
    220045: ("Heart Rate", "HR", "chartevents", "Routine Vital Signs", "bpm", "Numeric", "", ""),
    220210: ("Respiratory Rate", "RR", "chartevents", "Respiratory", "insp/min", "Numeric", "", ""),
    220277: ("O2 saturation pulseoxymetry", "SpO2", "chartevents", "Respiratory", "%", "Numeric", "", ""),
    224144: ("Blood Flow (ml/min)", "Blood Flow (ml/min)", "chartevents", "Dialysis", "ml/min", "Numeric", "", ""),
    224149: ("Access Pressure", "Access Pressure", "chartevents", "Dialysis", "mmHg", "Numeric", "", ""),
}
