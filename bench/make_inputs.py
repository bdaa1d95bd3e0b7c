"""Write deterministic HL7 v2.5.1 benchmark inputs.

Usage:

    .venv/bin/python bench/make_inputs.py [OUT_DIR]     # default target/bench-inputs

Files (segments end in CR, ASCII only, same bytes on every run):

* adt_a01.hl7      one ADT^A01 (MSH EVN PID PD1 NK1 PV1 PV2 OBX OBX AL1 DG1
                   GT1 IN1), about 1.2 KB; PID-3 has two repetitions (MRN and
                   SSN), PID-5 several components.
* oru_r01.hl7      one ORU^R01 (MSH PID PV1 ORC OBR and exactly 30 OBX),
                   about 6 KB.
* batch_100mb.hl7  FHS BHS <messages> BTS FTS, about 100 MiB of varied ADT
                   (A01/A04/A08, optional segments) and ORU^R01 (1-40 OBX)
                   messages; every message has a distinct MSH-10 and a
                   distinct PID-3-1. Written as a stream, message by message.

All people, places, identifiers and numbers are synthetic, drawn from a
random.Random with a fixed seed (phone numbers use the fictional 555-01xx
range, SSNs the never-issued 9xx area, e-mail domains example.org).
"""

import os
import random
import sys
from datetime import datetime, timedelta

SEED = 20240315
BATCH_TARGET_BYTES = 100 * 1024 * 1024
BASE_TIME = datetime(2024, 3, 15, 8, 30, 12)

FAMILY = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER",
          "DAVIS", "RODRIGUEZ", "MARTINEZ", "HERNANDEZ", "LOPEZ", "GONZALEZ",
          "WILSON", "ANDERSON", "THOMAS", "TAYLOR", "MOORE", "JACKSON", "MARTIN",
          "LEE", "PEREZ", "THOMPSON", "WHITE", "HARRIS", "SANCHEZ", "CLARK",
          "RAMIREZ", "LEWIS", "ROBINSON", "NGUYEN", "OKAFOR", "KOWALSKI", "MULLER"]
GIVEN_M = ["JAMES", "JOHN", "ROBERT", "MICHAEL", "DAVID", "CARLOS", "WEI",
           "AHMED", "LUKAS", "SAMUEL", "OMAR", "PETER", "DANIEL", "THOMAS"]
GIVEN_F = ["MARY", "PATRICIA", "JENNIFER", "LINDA", "ELENA", "SARAH", "MEI",
           "FATIMA", "ANNA", "GRACE", "SOFIA", "CHLOE", "NORA", "JUDITH"]
STREETS = ["ELM ST", "OAK AVE", "MAPLE DR", "CEDAR LN", "PINE RD", "LAKE VIEW BLVD",
           "HILLCREST WAY", "RIVER RD", "MAIN ST", "2ND AVE", "WILLOW CT"]
CITIES = [("SPRINGFIELD", "IL", "627"), ("RIVERTON", "WY", "825"),
          ("FAIRVIEW", "OR", "970"), ("GREENVILLE", "SC", "296"),
          ("MADISON", "WI", "537"), ("FRANKLIN", "TN", "370"),
          ("CLINTON", "IA", "527"), ("SALEM", "MA", "019")]
# (id, family, given) of attending/referring physicians; NPIs are made up.
DOCTORS = [("1003000126", "WELBY", "MARCUS"), ("1518000214", "QUINN", "MICHAELA"),
           ("1730000398", "KILDARE", "JAMES"), ("1245000477", "GREY", "MEREDITH"),
           ("1962000513", "CARTER", "JOHN"), ("1386000690", "ROSS", "DOUG")]
UNITS = ["4WEST", "5EAST", "ICU", "MEDSURG", "CARDIO", "ONC"]
DIAGNOSES = [("R07.9", "Chest pain, unspecified"), ("J18.9", "Pneumonia, unspecified organism"),
             ("I10", "Essential (primary) hypertension"), ("E11.9", "Type 2 diabetes mellitus without complications"),
             ("N39.0", "Urinary tract infection, site not specified"), ("K35.80", "Unspecified acute appendicitis"),
             ("S72.001A", "Fracture of unspecified part of neck of right femur"), ("I48.91", "Unspecified atrial fibrillation")]
ALLERGENS = [("DA", "70618", "Penicillin", "Hives"), ("DA", "2670", "Codeine", "Nausea"),
             ("FA", "256349002", "Peanut", "Anaphylaxis"), ("DA", "10180", "Sulfamethoxazole", "Rash"),
             ("EA", "111088007", "Latex", "Contact dermatitis")]
INSURERS = [("BCBS01", "BLUE PLAN OF EXAMPLE"), ("AETX02", "ACME HEALTH INSURANCE"),
            ("MCARE", "MEDICARE PART A"), ("UHX03", "UNITED EXAMPLE HEALTH")]
# (LOINC code, name, UCUM unit, low, high, decimals) for lab results.
LABS = [
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36.0, 50.0, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 11.0, 1),
    ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.2, 5.9, 2),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0),
    ("787-2", "MCV [Entitic volume] by Automated count", "fL", 80, 100, 0),
    ("785-6", "MCH [Entitic mass] by Automated count", "pg", 27.0, 33.0, 1),
    ("786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 32.0, 36.0, 1),
    ("788-0", "Erythrocyte distribution width [Ratio] by Automated count", "%", 11.5, 14.5, 1),
    ("770-8", "Neutrophils/100 leukocytes in Blood by Automated count", "%", 40, 75, 0),
    ("736-9", "Lymphocytes/100 leukocytes in Blood by Automated count", "%", 20, 45, 0),
    ("5905-5", "Monocytes/100 leukocytes in Blood by Automated count", "%", 2, 10, 0),
    ("713-8", "Eosinophils/100 leukocytes in Blood by Automated count", "%", 0, 6, 0),
    ("706-2", "Basophils/100 leukocytes in Blood by Automated count", "%", 0, 2, 0),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
    ("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 6.0, 8.3, 1),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0, 1),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.2, 1),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 44, 147, 0),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7, 56, 0),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 10, 40, 0),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200, 0),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 35, 150, 0),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 80, 0),
    ("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL", 50, 130, 0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 1),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
    ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 24, 336, 0),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.0, 10.0, 1),
    ("33762-6", "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma", "pg/mL", 0, 125, 0),
    ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.8, 1.2, 1),
    ("5902-2", "Prothrombin time (PT)", "s", 11.0, 13.5, 1),
    ("14979-9", "aPTT in Platelet poor plasma by Coagulation assay", "s", 25.0, 35.0, 1),
]
PANEL = ("24323-8", "Comprehensive metabolic and hematology panel")


def ts(moment):
    return moment.strftime("%Y%m%d%H%M%S")


def segment(*fields):
    """Fields joined by '|' plus the CR segment terminator."""
    return "|".join(fields) + "\r"


class Person:
    """One synthetic patient with all the demographics the messages use."""

    def __init__(self, rng, mrn):
        self.mrn = mrn
        self.sex = rng.choice("MF")
        self.family = rng.choice(FAMILY)
        self.given = rng.choice(GIVEN_M if self.sex == "M" else GIVEN_F)
        self.middle = rng.choice("ABCDEFGHJKLMNPRSTW")
        self.birth = f"{rng.randint(1930, 2020)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        self.ssn = f"9{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        city, state, zip3 = rng.choice(CITIES)
        self.address = (f"{rng.randint(10, 9999)} {rng.choice(STREETS)}^APT {rng.randint(1, 40)}"
                        f"^{city}^{state}^{zip3}{rng.randint(10, 99)}^USA^H")
        self.phone = f"(555)555-01{rng.randint(0, 99):02d}"
        self.email = f"{self.given.lower()}.{self.family.lower()}{rng.randint(1, 99)}@example.org"
        self.account = f"ACCT{rng.randint(100000, 999999)}"

    def pid(self):
        suffix = "JR" if self.mrn % 7 == 0 else ""
        return segment(
            "PID", "1", "",
            f"{self.mrn}^^^CITYGEN^MR~{self.ssn}^^^SSA^SS",
            "",
            f"{self.family}^{self.given}^{self.middle}^{suffix}^^^L",
            "",
            self.birth,
            self.sex,
            "",
            "2106-3^White^HL70005",
            self.address,
            "",
            f"{self.phone}^PRN^PH~^NET^Internet^{self.email}",
            "",
            "ENG^English^HL70296",
            "M^Married^HL70002",
            "",
            f"{self.account}^^^CITYGEN^AN",
            self.ssn,
        )


def doctor(rng):
    npi, family, given = rng.choice(DOCTORS)
    return f"{npi}^{family}^{given}^^^DR^MD^^^^^^NPI"


def msh(event, structure, control_id, moment, sending="EPICADT"):
    return segment("MSH", "^~\\&", sending, "CITYGEN", "PLEXUS", "CITYGEN", ts(moment), "",
                   f"{event}^{structure}", control_id, "P", "2.5.1", "", "", "AL", "NE")


def pv1(rng, person, patient_class):
    unit = rng.choice(UNITS)
    room = f"{rng.randint(1, 5)}{rng.randint(0, 40):02d}"
    return segment("PV1", "1", patient_class, f"{unit}^{room}^{rng.choice('AB')}^CITYGEN",
                   "E^Emergency^HL70007", "", "", doctor(rng), doctor(rng), "", "MED",
                   "", "", "", "", "", "", "", "", f"VN{person.mrn}^^^CITYGEN^VN")


def adt(rng, person, control_id, moment, event="A01", full=True):
    """ADT^<event>^ADT_A01; full=True always includes every optional segment."""
    out = [msh(f"ADT^{event}", "ADT_A01", control_id, moment),
           segment("EVN", event, ts(moment), "", "", f"U{rng.randint(100, 999)}^CLERK^PAT"),
           person.pid(),
           segment("PD1", "", "", "CITY GENERAL CLINIC^^10045", doctor(rng))]
    if full or rng.random() < 0.7:
        out.append(segment("NK1", "1", f"{rng.choice(FAMILY)}^{rng.choice(GIVEN_F + GIVEN_M)}",
                           "SPO^Spouse^HL70063", person.address, person.phone, "", "EC^Emergency Contact^HL70131"))
    out.append(pv1(rng, person, rng.choice("IEO")))
    code, text = rng.choice(DIAGNOSES)
    out.append(segment("PV2", "", "", f"{code}^{text}^I10"))
    if full or rng.random() < 0.5:
        out.append(segment("OBX", "1", "NM", "8302-2^Body height^LN", "", str(rng.randint(150, 200)),
                           "cm^centimeter^UCUM", "", "", "", "", "F"))
        out.append(segment("OBX", "2", "NM", "29463-7^Body weight^LN", "", f"{rng.uniform(45, 130):.1f}",
                           "kg^kilogram^UCUM", "", "", "", "", "F"))
    allergies = rng.sample(ALLERGENS, 1 if full else rng.randint(0, 3))
    for n, (kind, acode, atext, reaction) in enumerate(allergies, start=1):
        out.append(segment("AL1", str(n), f"{kind}^Allergy^HL70127", f"{acode}^{atext}", "MO^Moderate^HL70128", reaction))
    out.append(segment("DG1", "1", "", f"{code}^{text}^I10", "", ts(moment), "A"))
    if full or rng.random() < 0.6:
        plan_id, plan_name = rng.choice(INSURERS)
        out.append(segment("GT1", "1", "", f"{person.family}^{person.given}", "", person.address, person.phone))
        out.append(segment("IN1", "1", plan_id, plan_id, plan_name, "", "", "", f"GRP{rng.randint(1000, 9999)}"))
    return "".join(out)


def result(rng, n, lab, moment):
    code, name, unit, low, high, decimals = lab
    value = rng.uniform(low * 0.8, high * 1.2)
    flag = "L" if value < low else "H" if value > high else "N"
    return segment("OBX", str(n), "NM", f"{code}^{name}^LN", "", f"{value:.{decimals}f}",
                   f"{unit}^{unit}^UCUM", f"{low}-{high}", flag, "", "", "F", "", "",
                   ts(moment), "", "", "", "", ts(moment), "", "", "",
                   "CITYLAB^City General Laboratory^L")


def oru(rng, person, control_id, moment, count):
    order = f"ORD{rng.randint(100000, 999999)}"
    filler = f"LAB{rng.randint(100000, 999999)}"
    ordering = doctor(rng)
    collected = moment - timedelta(minutes=rng.randint(30, 240))
    out = [msh("ORU^R01", "ORU_R01", control_id, moment, sending="LABSYS"),
           person.pid(),
           pv1(rng, person, "O"),
           segment("ORC", "RE", f"{order}^CITYGEN", f"{filler}^CITYLAB", "", "CM", "", "", "",
                   ts(moment), "", "", ordering),
           segment("OBR", "1", f"{order}^CITYGEN", f"{filler}^CITYLAB", f"{PANEL[0]}^{PANEL[1]}^LN",
                   "", "", ts(collected), "", "", "", "", "", "", "", "", ordering, "", "", "", "", "",
                   ts(moment), "", "LAB", "F")]
    labs = rng.sample(LABS, count)  # count <= len(LABS): distinct tests
    out.extend(result(rng, n, lab, moment) for n, lab in enumerate(labs, start=1))
    return "".join(out)


def write_batch(path, rng):
    """Stream FHS/BHS, messages, BTS/FTS until about BATCH_TARGET_BYTES."""
    with open(path, "w", encoding="ascii", newline="") as out:
        header = ts(BASE_TIME)
        out.write(segment("FHS", "^~\\&", "EPICADT", "CITYGEN", "PLEXUS", "CITYGEN", header, "", "BENCH.HL7", "", "F000001"))
        out.write(segment("BHS", "^~\\&", "EPICADT", "CITYGEN", "PLEXUS", "CITYGEN", header, "", "", "", "B000001"))
        written = count = 0
        moment = BASE_TIME
        while written < BATCH_TARGET_BYTES:
            count += 1
            moment += timedelta(seconds=rng.randint(1, 30))
            person = Person(rng, mrn=20_000_000 + count)
            control_id = f"B{count:09d}"
            if rng.random() < 0.6:
                message = adt(rng, person, control_id, moment, event=rng.choice(["A01", "A04", "A08"]), full=False)
            else:
                message = oru(rng, person, control_id, moment, count=rng.randint(1, 40))
            out.write(message)
            written += len(message)
        out.write(segment("BTS", str(count)))
        out.write(segment("FTS", "1"))
    return count


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "bench-inputs")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(SEED)

    single = {
        "adt_a01.hl7": adt(rng, Person(rng, mrn=10_000_001), "MSG00000001", BASE_TIME),
        "oru_r01.hl7": oru(rng, Person(rng, mrn=10_000_002), "MSG00000002", BASE_TIME, count=30),
    }
    for name, text in single.items():
        with open(os.path.join(out_dir, name), "w", encoding="ascii", newline="") as f:
            f.write(text)

    messages = write_batch(os.path.join(out_dir, "batch_100mb.hl7"), rng)

    for name in ["adt_a01.hl7", "oru_r01.hl7", "batch_100mb.hl7"]:
        size = os.path.getsize(os.path.join(out_dir, name))
        extra = f" ({messages} messages)" if name == "batch_100mb.hl7" else ""
        print(f"{os.path.join(out_dir, name)}: {size} bytes{extra}")


if __name__ == "__main__":
    main()
