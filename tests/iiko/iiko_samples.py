"""Composed XML answers from docs/iiko-server-api.md §7 (all ids and values are made up)."""

DEPARTMENTS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<corporateItemDtoes>
  <corporateItemDto>
    <id>6f1c2b1e-0000-4000-8000-000000000001</id>
    <code/>
    <name>ООО «Ромашка»</name>
    <type>JURPERSON</type>
    <taxpayerIdNumber>7701234567</taxpayerIdNumber>
    <parentId>6f1c2b1e-0000-4000-8000-000000000000</parentId>
    <jurPersonAdditionalPropertiesDto>
      <taxpayerId>7701234567</taxpayerId>
      <accountingReasonCode>770101001</accountingReasonCode>
    </jurPersonAdditionalPropertiesDto>
  </corporateItemDto>
  <corporateItemDto>
    <parentId>6f1c2b1e-0000-4000-8000-000000000001</parentId>
    <id>6f1c2b1e-0000-4000-8000-000000000101</id>
    <name>Ресторан на Тверской</name>
    <code>001</code>
    <type>DEPARTMENT</type>
    <taxpayerIdNumber/>
  </corporateItemDto>
</corporateItemDtoes>
""".encode()

SUPPLIERS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<employees>
  <employee>
    <id>3f08e41c-0000-4000-8000-00000000c001</id>
    <code>703</code>
    <name>ООО "Овощебаза №1"</name>
    <taxpayerIdNumber>5001234567</taxpayerIdNumber>
    <note>КПП: 500101001</note>
    <deleted>false</deleted>
    <supplier>true</supplier>
    <employee>false</employee>
    <client>false</client>
  </employee>
  <employee>
    <id>47c6accc-0000-4000-8000-00000000c002</id>
    <code>M6A</code>
    <name>Ресторан на Тверской: Основной склад</name>
    <deleted>false</deleted>
    <supplier>true</supplier>
    <employee>true</employee>
    <client>false</client>
    <representsStore>true</representsStore>
    <representedStoreId>1239d270-0000-4000-8000-00000000a001</representedStoreId>
    <roleCodes>SUP</roleCodes>
    <roleCodes>COOK</roleCodes>
  </employee>
  <employee>
    <id>47c6accc-0000-4000-8000-00000000c003</id>
    <code/>
    <name>ИП Петров (не работаем)</name>
    <deleted>true</deleted>
    <supplier>true</supplier>
    <employee>false</employee>
    <client>false</client>
  </employee>
</employees>
""".encode()

INVOICES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<incomingInvoiceDtoes>
  <document>
    <items>
      <item>
        <actualAmount>24.000000000</actualAmount>
        <store>1239d270-0000-4000-8000-00000000a001</store>
        <code>00361</code>
        <price>50.700000000</price>
        <sum>1216.800000000</sum>
        <num>1</num>
        <product>c1ebbf72-0000-4000-8000-00000000f001</product>
        <amount>24.000000000</amount>
        <isAdditionalExpense>false</isAdditionalExpense>
      </item>
      <item>
        <num>2</num>
        <product>c1ebbf72-0000-4000-8000-00000000f002</product>
        <amount>1.000000000</amount>
        <sum>300.000000000</sum>
        <isAdditionalExpense>true</isAdditionalExpense>
      </item>
    </items>
    <id>575a43c7-0000-4000-8000-00000000d001</id>
    <incomingDocumentNumber>УПД-16594</incomingDocumentNumber>
    <incomingDate>2024-03-01</incomingDate>
    <supplier>3f08e41c-0000-4000-8000-00000000c001</supplier>
    <invoice/>
    <documentNumber>1568</documentNumber>
    <dateIncoming>2024-03-01T10:15:00</dateIncoming>
    <comment>Овощи</comment>
    <status>PROCESSED</status>
    <futureElement>kept</futureElement>
  </document>
  <document>
    <id>575a43c7-0000-4000-8000-00000000d202</id>
    <documentNumber>1711</documentNumber>
    <dateIncoming>2024-04-05T12:30:00</dateIncoming>
    <supplier>3f08e41c-0000-4000-8000-00000000c001</supplier>
    <status>NEW</status>
    <items/>
  </document>
</incomingInvoiceDtoes>
""".encode()

SERVER_INFO = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<r>
  <serverName>Demo Chain</serverName>
  <edition>chain</edition>
  <version>8.9.5012.0</version>
  <computerName>IIKO-CHAIN-01</computerName>
  <serverState>STARTED_SUCCESSFULLY</serverState>
</r>
"""
